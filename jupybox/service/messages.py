"""The schema of every request the service accepts: JSON Schema documents, compiled once.

A request that does not match its operation's schema is refused with a one-line error naming the
field; nothing in it reaches the runtime. The container spec's schema bounds every string and
list, so a client cannot make the service allocate much more than the frame it sent.

Compiled with fastjsonschema (a kept library: it turns a schema into Python code once, then checks
a spec in ~3 µs, where jsonschema's interpreter takes ~100 µs; the service checks every request on
a container's start path).
"""

from __future__ import annotations

import fastjsonschema

from .. import errors

_STR = {"type": "string", "maxLength": 65536}
_NAME = {"type": "string", "minLength": 1, "maxLength": 4096}
_STRS = {"type": "array", "items": _STR, "maxItems": 65536}
_OPT_STR = {"type": ["string", "null"], "maxLength": 65536}
_STR_MAP = {"type": "object", "additionalProperties": _STR, "maxProperties": 65536,
            "propertyNames": {"maxLength": 65536}}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
_OPT_INT = {"type": ["integer", "null"], "minimum": -1, "maximum": 2**63 - 1}

SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["image"],
    "properties": {
        "image": _NAME,
        "command": _STRS,
        "entrypoint": {"type": ["array", "null"], "items": _STR, "maxItems": 65536},
        "env": _STR_MAP,
        "workdir": _OPT_STR,
        "user": {"type": ["string", "null"], "maxLength": 1024},
        "hostname": {"type": ["string", "null"], "maxLength": 1024},
        "name": {"type": ["string", "null"], "maxLength": 1024},
        "mounts": {"type": "array", "maxItems": 4096, "items": {
            "type": "object", "additionalProperties": False, "required": ["destination"],
            "properties": {"destination": _STR, "source": _STR, "type": {"enum": ["bind", "volume", "tmpfs"]},
                           "readonly": _BOOL, "options": _STRS}}},
        "limits": {"type": "object", "additionalProperties": False, "properties": {
            "memory": _OPT_INT, "memory_swap": _OPT_INT, "cpus": {"type": ["number", "null"], "minimum": 0},
            "cpu_shares": _OPT_INT, "pids": _OPT_INT}},
        "network": {"type": "string", "minLength": 1, "maxLength": 1024},
        "ports": {"type": "array", "maxItems": 65536, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["host_ip", "host_port", "container_port", "protocol"],
            "properties": {"host_ip": {"type": "string", "maxLength": 64},
                           "host_port": {"type": "integer", "minimum": 0, "maximum": 65535},
                           "container_port": {"type": "integer", "minimum": 1, "maximum": 65535},
                           "protocol": {"enum": ["tcp", "udp"]}}}},
        "publish_all": _BOOL,
        "network_aliases": _STRS,
        "dns": _STRS,
        "add_hosts": _STRS,
        "readonly_rootfs": _BOOL,
        "init": _BOOL,
        "privileged": _BOOL,
        "cap_add": _STRS,
        "cap_drop": _STRS,
        "remove": _BOOL,
        "interactive": _BOOL,
        "tty": _BOOL,
        "labels": _STR_MAP,
        "restart": {"type": "string", "maxLength": 64},
        "stop_signal": {"type": ["string", "null"], "maxLength": 64},
        "stop_timeout": {"type": ["integer", "null"], "minimum": -1, "maximum": 2**31},
        "healthcheck": {"type": ["object", "null"], "additionalProperties": False, "properties": {
            "test": _STRS, "interval": {"type": "number", "minimum": 0}, "timeout": {"type": "number", "minimum": 0},
            "retries": {"type": "integer", "minimum": 0, "maximum": 1 << 30},
            "start_period": {"type": "number", "minimum": 0}, "start_interval": {"type": "number", "minimum": 0}}},
        "devices": {"type": "array", "maxItems": 128, "items": {
            "type": "object", "additionalProperties": False, "required": ["path_on_host"],
            "properties": {"path_on_host": _STR, "path_in_container": _STR,
                           "permissions": {"type": "string", "maxLength": 3}}}},
        "shm_size": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**63 - 1},
        "ulimits": {"type": "array", "maxItems": 64, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "soft", "hard"],
            "properties": {"name": {"type": "string", "maxLength": 32}, "soft": _INT, "hard": _INT}}},
        # a seccomp profile travels as its JSON (seccomp=...), checked again by the runtime
        "security_opt": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 1 << 20}},
    },
}

_REF = {"type": "string", "minLength": 1, "maxLength": 1024}


def _request(op: str, properties: dict | None = None, required=()) -> dict:
    props = {"v": {"const": 1}, "op": {"const": op}, "req": {"type": "integer", "minimum": 0, "maximum": 2**53}}
    props.update(properties or {})
    return {"type": "object", "additionalProperties": False, "properties": props,
            "required": ["v", "op", "req", *required]}


REQUESTS = {
    "ping": _request("ping"),
    # awaits_removal: the client waits for the "removed" event (the CLI's run --rm), so its exit
    # is followed by the cleanup at once, not after the hold that lets a loop's next run go first
    "run": _request("run", {"spec": SPEC, "attached": _BOOL, "awaits_removal": _BOOL}, ["spec"]),
    "create": _request("create", {"spec": SPEC}, ["spec"]),
    "start": _request("start", {"id": _REF, "attached": _BOOL, "awaits_removal": _BOOL}, ["id"]),
    "exec": _request("exec", {"id": _REF, "argv": dict(_STRS, minItems=1), "env": _STR_MAP, "workdir": _OPT_STR,
                              "user": {"type": ["string", "null"], "maxLength": 1024},
                              "privileged": {"type": ["boolean", "null"]}}, ["id", "argv"]),
    "kill": _request("kill", {"id": _REF, "signal": {"type": "integer", "minimum": 0, "maximum": 64}}, ["id"]),
    "stop": _request("stop", {"id": _REF, "timeout": {"type": ["number", "null"], "minimum": 0, "maximum": 1e9}},
                     ["id"]),
    "remove": _request("remove", {"id": _REF, "force": _BOOL}, ["id"]),
    "wait": _request("wait", {"id": _REF}, ["id"]),
    "prune": _request("prune"),
    "shutdown": _request("shutdown", {"force": _BOOL}),
}

_compiled: dict = {}


def validate(msg: dict) -> dict:
    """``msg`` if it is a well-formed request; UsageError naming what is wrong otherwise."""
    op = msg.get("op")
    if not isinstance(op, str) or op not in REQUESTS:
        raise errors.UsageError(f"unknown request {str(op)[:64]!r}")
    check = _compiled.get(op)
    if check is None:
        check = _compiled[op] = fastjsonschema.compile(REQUESTS[op])
    try:
        return check(msg)
    except fastjsonschema.JsonSchemaException as e:
        raise errors.UsageError(f"malformed {op} request: {str(e)[:200]}") from None
