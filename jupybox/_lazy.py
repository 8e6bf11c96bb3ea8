"""Names a package re-exports but imports on first use (PEP 562), so that importing the package
stays cheap: `jupybox run` must not pay for the magics, the registry or the layer code."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, names: dict[str, str], namespace: dict):
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps an attribute to the
    submodule (relative to ``package``) that defines it; a value is cached in ``namespace``."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(names) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
