"""Several compose files into one model: the spec's merge rules (compose-go's ``override`` package).

``-f base.yaml -f override.yaml`` (or ``compose.yaml`` + ``compose.override.yaml``): mappings merge
key by key, scalars are replaced, sequences are appended; then sequences that name things are
made unique by their key, the later definition winning (``ports`` by host:port/protocol,
``volumes`` by target, ``environment``/``labels`` by name, ``expose``, ``profiles``...). Special
cases: ``command``, ``entrypoint`` and ``healthcheck.test`` are replaced whole; ``build`` and
``depends_on``/``networks`` given as strings or lists are merged as mappings; ``environment``,
``labels`` and the like merge as ``KEY=VALUE`` sequences. ``!reset`` removes a key inherited from
earlier files, ``!override`` replaces it instead of merging.
"""

from __future__ import annotations

from .errors import ComposeError
from .yamlfile import RESET, Override


def _matches(path: tuple, pattern: tuple) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == q for p, q in zip(pattern, path))


def _scalar_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def to_sequence(value) -> list:
    """A mapping as sorted ``KEY=VALUE`` items (a null value: ``KEY``); a string as one item."""
    if isinstance(value, dict):
        seq = []
        for k, v in value.items():
            if v is None:
                seq.append(k)
            elif isinstance(v, list):
                seq += [f"{k}={_scalar_text(x)}" for x in v]
            else:
                seq.append(f"{k}={_scalar_text(v)}")
        return sorted(seq)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return [value]
    return []


def to_mapping(value, default=None) -> dict:
    """A list of names as a mapping (each to a copy of ``default``)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(s): (dict(default) if default is not None else None) for s in value}
    return {}


def _merge_sequence(a, b, path):
    return to_sequence(a) + to_sequence(b)


def _replace(a, b, path):
    return b


def _merge_build(a, b, path):
    as_map = lambda v: {"context": v} if isinstance(v, str) else (v or {})  # noqa: E731
    return _merge_mappings(as_map(a), as_map(b), path)


_DEP_DEFAULT = {"condition": "service_started", "required": True}


def _merge_depends_on(a, b, path):
    return _merge_mappings(to_mapping(a, _DEP_DEFAULT), to_mapping(b, _DEP_DEFAULT), path)


def _merge_networks(a, b, path):
    return _merge_mappings(to_mapping(a), to_mapping(b), path)


def _merge_extra_hosts(a, b, path):
    left = to_sequence(a)
    return left + [v for v in to_sequence(b) if v not in left]


def _merge_logging(a, b, path):
    if not isinstance(a, dict) or not isinstance(b, dict):
        return b
    if a.get("driver") == b.get("driver") or "driver" not in a or "driver" not in b:
        return _merge_mappings(a, b, path)
    return b


SPECIAL = [
    (("services", "*", "annotations"), _merge_sequence),
    (("services", "*", "build"), _merge_build),
    (("services", "*", "build", "args"), _merge_sequence),
    (("services", "*", "build", "labels"), _merge_sequence),
    (("services", "*", "build", "extra_hosts"), _merge_extra_hosts),
    (("services", "*", "command"), _replace),
    (("services", "*", "depends_on"), _merge_depends_on),
    (("services", "*", "deploy", "labels"), _merge_sequence),
    (("services", "*", "dns"), _merge_sequence),
    (("services", "*", "dns_opt"), _merge_sequence),
    (("services", "*", "dns_search"), _merge_sequence),
    (("services", "*", "entrypoint"), _replace),
    (("services", "*", "env_file"), _merge_sequence),
    (("services", "*", "environment"), _merge_sequence),
    (("services", "*", "extra_hosts"), _merge_extra_hosts),
    (("services", "*", "healthcheck", "test"), _replace),
    (("services", "*", "labels"), _merge_sequence),
    (("services", "*", "logging"), _merge_logging),
    (("services", "*", "networks"), _merge_networks),
    (("services", "*", "sysctls"), _merge_sequence),
    (("services", "*", "tmpfs"), _merge_sequence),
    (("services", "*", "ulimits", "*"), _replace),
    (("networks", "*", "labels"), _merge_sequence),
    (("volumes", "*", "labels"), _merge_sequence),
]


def strip_markers(value):
    """A value from the first file (nothing to reset or override): markers resolved."""
    if isinstance(value, Override):
        return strip_markers(value.value)
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if v is not RESET}
    if isinstance(value, list):
        return [strip_markers(v) for v in value if v is not RESET]
    return value


def merge_value(a, b, path: tuple):
    if isinstance(b, Override):
        return strip_markers(b.value)
    if isinstance(a, dict) and isinstance(b, dict):  # !reset of a key, whatever merges the rest
        a = {k: v for k, v in a.items() if b.get(k) is not RESET}
    for pattern, merger in SPECIAL:
        if _matches(path, pattern):
            return merger(a, strip_markers(b), path)
    if b is None:
        return a
    if isinstance(a, dict):
        if not isinstance(b, dict):
            raise ComposeError(f"cannot override {'.'.join(map(str, path))}: a mapping is replaced by a "
                               f"{type(b).__name__}")
        return _merge_mappings(a, b, path)
    if isinstance(a, list):
        if not isinstance(b, list):
            raise ComposeError(f"cannot override {'.'.join(map(str, path))}: a list is replaced by a "
                               f"{type(b).__name__}")
        return a + strip_markers(b)
    return strip_markers(b)


def _merge_mappings(a: dict, b: dict, path: tuple) -> dict:
    out = dict(a)
    for k, v in b.items():
        if v is RESET:
            out.pop(k, None)
        elif k not in out:
            out[k] = strip_markers(v)
        else:
            out[k] = merge_value(out[k], v, path + (k,))
    return out


def merge(base: dict, overlay: dict) -> dict:
    return _merge_mappings(base, overlay, ())


# -- unicity ------------------------------------------------------------------------------------
def _key_value(item) -> str:
    if not isinstance(item, str):
        raise ValueError(f"unexpected {type(item).__name__} {item!r}")
    return item.partition("=")[0]


def _volume_key(item) -> str:
    if isinstance(item, dict):
        if "target" not in item:
            raise ValueError("a volume is missing its mount target")
        return str(item["target"])
    from .canonical import parse_volume

    return parse_volume(str(item)).get("target", "")


def _port_key(item) -> str:
    if isinstance(item, dict):
        if "target" not in item:
            raise ValueError("a port is missing its target")
        ip, proto = item.get("host_ip", "0.0.0.0"), item.get("protocol", "tcp")
        return f"{ip}:{item.get('published')}:{item['target']}/{proto}"
    return str(item)


def _env_file_key(item) -> str:
    if isinstance(item, dict):
        if "path" not in item:
            raise ValueError("an env_file entry is missing its path")
        return str(item["path"])
    return str(item)


def _plain(item) -> str:
    return str(item)


UNIQUE = [
    (("services", "*", key), _key_value) for key in (
        "annotations", "cap_add", "cap_drop", "dns", "dns_opt", "dns_search", "environment", "labels", "links",
        "profiles", "sysctls", "tmpfs",
    )
] + [
    (("services", "*", "build", "args"), _key_value),
    (("services", "*", "build", "labels"), _key_value),
    (("services", "*", "build", "tags"), _key_value),
    (("services", "*", "deploy", "labels"), _key_value),
    (("services", "*", "networks", "*", "aliases"), _key_value),
    (("services", "*", "env_file"), _env_file_key),
    (("services", "*", "expose"), _plain),
    (("services", "*", "ports"), _port_key),
    (("services", "*", "volumes"), _volume_key),
    (("networks", "*", "labels"), _key_value),
]


def enforce_unicity(model, path: tuple = ()):
    """Later definitions of the same item replace earlier ones, in the earlier one's place."""
    if isinstance(model, dict):
        return {k: enforce_unicity(v, path + (k,)) for k, v in model.items()}
    if isinstance(model, list):
        for pattern, key_of in UNIQUE:
            if _matches(path, pattern):
                out: list = []
                index: dict = {}
                for i, item in enumerate(model):
                    try:
                        key = key_of(item)
                    except ValueError as e:
                        raise ComposeError(str(e), key=f"{'.'.join(map(str, path))}[{i}]") from None
                    if key in index:
                        out[index[key]] = item
                    else:
                        index[key] = len(out)
                        out.append(item)
                return out
    return model
