"""``RUN --mount=...``: one mount's CSV fields → a :class:`MountSpec`, with BuildKit's rules and
messages (``instructions/commands_runmount.go``).

``type=bind`` (the default: the build context, or ``from=`` a stage or an image, read-only unless
``rw``), ``cache`` (a directory the store keeps across builds: ``id``, ``sharing``, ``uid``,
``gid``, ``mode``), ``tmpfs`` (``size``), ``secret`` (``id``, ``env``, ``required``) and ``ssh``
(refused when the step runs: jupybox forwards no SSH agent). Values may use the step's variables,
except ``from`` (a stage named through a variable cannot be found before the build: BuildKit's
rule too).
"""

from __future__ import annotations

import csv
import re
from typing import Callable

from ..errors import InvalidSize
from ..units import parse_size
from .suggest import with_hint

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")
KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode", "uid", "gid",
        "src", "dst", "destination", "ro", "rw", "readwrite", "env")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class MountError(ValueError):
    pass


class MountSpec:
    """One ``--mount`` (after expansion). ``readonly`` is BuildKit's default per type when not given."""

    __slots__ = ("type", "from_", "source", "target", "readonly", "size", "id", "sharing", "required", "env",
                 "mode", "uid", "gid")

    def __init__(self):
        self.type = "bind"
        self.from_ = ""
        self.source = ""
        self.target = ""
        self.readonly = True
        self.size = 0
        self.id = ""
        self.sharing = ""
        self.required = False
        self.env: str | None = None
        self.mode: int | None = None
        self.uid: int | None = None
        self.gid: int | None = None

    def key(self) -> list:
        """What the step's cache key takes from the mount (not the content of caches or secrets)."""
        return [getattr(self, k) for k in self.__slots__]


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MountError(f"invalid value for {key}: {value}")


def _uint(key: str, value: str, base: int) -> int:
    try:  # Go's ParseUint: digits only (Python's int() also takes "0o", "_" and blanks)
        n = int(value, base) if re.fullmatch(r"[0-9]+", value) else -1
    except ValueError:
        n = -1
    if not 0 <= n < 1 << 32:
        raise MountError(f"invalid value {value} for {key}")
    return n


def fields(value: str) -> list[str]:
    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as e:
        raise MountError(f"failed to parse csv mounts: {e}") from None
    return rows[0] if rows else []


def check_from(value: str) -> None:
    """At parse time: ``from`` cannot be a variable (the stage graph is made before expansion)."""
    for field in fields(value):
        key, eq, val = field.partition("=")
        if eq and key.lower() == "from":
            i = val.find("$")
            if i != -1 and i != len(val) - 1:
                raise MountError("'from' doesn't support variable expansion, define alias stage instead")


def parse_mount(value: str, expand: Callable[[str], str]) -> MountSpec:
    m = MountSpec()
    ro_auto = True
    for field in fields(value):
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:  # a flag alone: "ro", "rw", "required"
            if key not in ("readonly", "ro", "readwrite", "rw", "required"):
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            val = "true"
        else:
            val = expand(val)
        only_for = {"required": ("secret", "ssh"), "size": ("tmpfs",)}.get(key)
        if only_for and m.type not in only_for:
            raise MountError(f"unexpected key '{key}' for mount type '{m.type}'")
        if key == "type":
            t = val.lower()
            if t not in MOUNT_TYPES:
                raise MountError(with_hint(f'unsupported mount type "{val}"', val, MOUNT_TYPES))
            m.type = t
        elif key == "from":
            m.from_ = val
        elif key in ("source", "src"):
            m.source = val
        elif key in ("target", "dst", "destination"):
            m.target = val
        elif key in ("readonly", "ro"):
            m.readonly, ro_auto = _bool(key, val), False
        elif key in ("readwrite", "rw"):
            m.readonly, ro_auto = not _bool(key, val), False
        elif key == "required":
            m.required = _bool(key, val)
        elif key == "size":
            try:
                m.size = parse_size(val)
            except InvalidSize:
                raise MountError(f"invalid value for {key}: {val}") from None
        elif key == "id":
            m.id = val
        elif key == "sharing":
            s = val.lower()
            if s not in SHARING:
                raise MountError(with_hint(f'unsupported sharing value "{val}"', val, SHARING))
            m.sharing = s
        elif key == "mode":
            m.mode = _uint(key, val, 8)
        elif key == "uid":
            m.uid = _uint(key, val, 10)
        elif key == "gid":
            m.gid = _uint(key, val, 10)
        elif key == "env":
            m.env = val
        else:
            raise MountError(with_hint(f"unexpected key '{key}' in '{field}'", key, KEYS))
    if m.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(m, name) is not None:
                raise MountError(f'{name} not allowed for "{m.type}" type mounts')
    if ro_auto:
        m.readonly = m.type not in ("cache", "tmpfs")
    if m.type == "secret":
        if m.from_:
            raise MountError("secret mount should not have a from")
        if m.sharing:
            raise MountError("secret mount should not define sharing")
        if not (m.source or m.target or m.id):
            raise MountError("invalid secret mount. one of source, target required")
        if m.source and m.id:
            raise MountError("both source and id can't be set")
    if m.sharing and m.type != "cache":
        raise MountError(f"invalid cache sharing set for {m.type} mount")
    return m
