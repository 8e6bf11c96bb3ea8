"""Plain data objects: keyword construction with defaults, equality, repr and ``to_dict``.

Not dataclasses on purpose: ``import dataclasses`` pulls in ``inspect`` and costs ~10 ms of every
``jupybox run`` (22.8 ms for ``python -c 'import dataclasses'`` against 9.9 ms for ``python -c
pass`` on a 2-vCPU VM), and all a container's spec needs of it is this. Used by the spec
(:mod:`jupybox.runtime.spec`) and the cgroup layer's :class:`~jupybox.cgroups.limits.Limits`.
"""

from __future__ import annotations

REQUIRED = object()


def _plain(value):
    """Deep copy into dicts and lists (what dataclasses.asdict gives)."""
    if isinstance(value, _Plain):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Plain:
    """Fields in ``FIELDS`` as (name, default); a class as default is a factory (list, dict...)."""

    FIELDS: tuple[tuple[str, object], ...] = ()

    def __init__(self, *args, **kw):
        cls = type(self).__name__
        if len(args) > len(self.FIELDS):
            raise TypeError(f"{cls}() takes at most {len(self.FIELDS)} positional arguments")
        for (name, _), value in zip(self.FIELDS, args):
            if name in kw:
                raise TypeError(f"{cls}() got multiple values for argument {name!r}")
            kw[name] = value
        for name, default in self.FIELDS:
            if name in kw:
                value = kw.pop(name)
            elif default is REQUIRED:
                raise TypeError(f"{cls}() missing required argument: {name!r}")
            else:
                value = default() if isinstance(default, type) else default
            setattr(self, name, value)
        if kw:
            raise TypeError(f"{cls}() got an unexpected keyword argument {next(iter(kw))!r}")

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n, _ in self.FIELDS)

    __hash__ = None  # mutable, like a dataclass with eq

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n, _ in self.FIELDS)})"

    def to_dict(self) -> dict:
        return {n: _plain(getattr(self, n)) for n, _ in self.FIELDS}
