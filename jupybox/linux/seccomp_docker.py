"""A seccomp profile in docker's JSON form (``--security-opt seccomp=PROFILE.json``): checked with
limits, then compiled by the same libseccomp code as the default profile (``seccomp.compile_rules``).

What docker's profiles say is supported: ``defaultAction``/``defaultErrnoRet``, ``architectures`` or
``archMap``, ``syscalls`` entries with ``names`` (or the old ``name``), ``action``, ``errnoRet``,
``args`` and ``includes``/``excludes`` (caps, arches, minKernel). Refused, in one line: a user-space
notifier (``SCMP_ACT_NOTIFY``, ``listenerPath``: nothing here would answer it) and filter ``flags``
(the filter is loaded with prctl, which takes none).
"""

from __future__ import annotations

import hashlib
import json

import fastjsonschema

from ..errors import UsageError
from . import seccomp

MAX_PROFILE = 1 << 20  # bytes: docker's own default profile is ~20 KiB
MAX_ENTRIES = 4096
_ACTIONS = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
            "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"]
_ARCH = {"type": "string", "pattern": "^SCMP_ARCH_[A-Z0-9_]{1,24}$"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 64}
_ERRNO = {"type": "integer", "minimum": 0, "maximum": 4095}
_U64 = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
_FILTER = {"type": "object", "additionalProperties": False, "properties": {
    "caps": {"type": "array", "items": _NAME, "maxItems": 64},
    "arches": {"type": "array", "items": _NAME, "maxItems": 16},
    "minKernel": {"type": "string", "pattern": r"^\d{1,4}(\.\d{1,4}){0,2}$"}}}
SCHEMA = {
    "type": "object",
    "required": ["defaultAction"],
    "additionalProperties": False,
    "properties": {
        "defaultAction": {"enum": _ACTIONS},
        "defaultErrnoRet": _ERRNO,
        "architectures": {"type": "array", "items": _ARCH, "maxItems": 16},
        "archMap": {"type": "array", "maxItems": 16, "items": {
            "type": "object", "additionalProperties": False, "required": ["architecture"],
            "properties": {"architecture": _ARCH, "subArchitectures": {"type": "array", "items": _ARCH,
                                                                       "maxItems": 16}}}},
        "flags": {"type": "array", "maxItems": 0},
        "listenerPath": {"type": "string", "maxLength": 0},
        "listenerMetadata": {"type": "string", "maxLength": 4096},
        "syscalls": {"type": "array", "maxItems": MAX_ENTRIES, "items": {
            "type": "object", "additionalProperties": False, "required": ["action"],
            "properties": {
                "names": {"type": "array", "items": _NAME, "maxItems": 1024},
                "name": _NAME,
                "action": {"enum": _ACTIONS},
                "errnoRet": _ERRNO,
                "args": {"type": ["array", "null"], "maxItems": 6, "items": {
                    "type": "object", "additionalProperties": False, "required": ["index", "value", "op"],
                    "properties": {"index": {"type": "integer", "minimum": 0, "maximum": 5}, "value": _U64,
                                   "valueTwo": _U64, "op": {"enum": sorted(seccomp._CMP_OPS)}}}},
                "includes": _FILTER,
                "excludes": _FILTER,
                "comment": {"type": "string", "maxLength": 4096}}}},
    },
}
_check = None
_compiled: dict[tuple[str, frozenset], bytes] = {}


def load(text: str, where: str = "seccomp profile") -> dict:
    """A profile's JSON text -> the profile, checked; UsageError (one line) otherwise."""
    global _check
    if len(text) > MAX_PROFILE:
        raise UsageError(f"{where}: larger than {MAX_PROFILE >> 10} KiB")
    try:
        prof = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{where}: not JSON: {e}") from None
    if _check is None:
        _check = fastjsonschema.compile(SCHEMA)
    try:
        _check(prof)
    except fastjsonschema.JsonSchemaException as e:
        hint = ""
        if "flags" in e.message or "listenerPath" in e.message:
            hint = " (filter flags and a user-space notifier are not supported)"
        elif "action" in e.message.lower():
            hint = f" (one of {', '.join(_ACTIONS)})"
        raise UsageError(f"{where}: {e.message[:200]}{hint}") from None
    for i, entry in enumerate(prof.get("syscalls") or ()):
        if not entry.get("names") and not entry.get("name"):
            raise UsageError(f"{where}: syscalls[{i}] names no system call")
    return prof


def compact(prof: dict) -> str:
    """The profile as one line of JSON (as docker keeps it in the container's SecurityOpt)."""
    return json.dumps(prof, separators=(",", ":"), sort_keys=True)


def _arches(prof: dict) -> list[str]:
    """libseccomp's names of the architectures the profile covers (docker's rules: the native
    architecture's archMap entry with its sub-architectures, else ``architectures``)."""
    native = "SCMP_ARCH_" + seccomp.MACHINE.upper()
    names: list[str] = []
    for m in prof.get("archMap") or ():
        if m["architecture"] == native:
            names = [m["architecture"], *(m.get("subArchitectures") or ())]
    if not names:
        names = list(prof.get("architectures") or ())
    return [n[len("SCMP_ARCH_"):].lower() for n in names] or [seccomp.MACHINE]


def filter_for(prof: dict, caps) -> bytes:
    """The BPF program of ``prof`` for a container with ``caps`` (compiled once per profile and
    capability set in this process)."""
    fcaps = frozenset(caps)
    text = compact(prof)
    key = (hashlib.sha256(text.encode()).hexdigest(), fcaps)
    bpf = _compiled.get(key)
    if bpf is None:
        entries = [dict(e, names=e.get("names") or [e["name"]]) for e in prof.get("syscalls") or ()]
        try:
            bpf = seccomp.compile_rules(prof["defaultAction"], prof.get("defaultErrnoRet"), _arches(prof),
                                        seccomp.applicable(entries, fcaps))
        except (OSError, ValueError) as e:
            raise UsageError(f"seccomp profile: {e}") from None
        if len(_compiled) > 64:
            _compiled.clear()
        _compiled[key] = bpf
    return bpf
