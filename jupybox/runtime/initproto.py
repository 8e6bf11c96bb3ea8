"""What the service says to a container's init (jupybox/linux/init.c), and how.

Messages on the init's control socket: a u32 length (little endian), a type byte, then fields,
each a tag byte, a u32 length and the value, NUL-terminated (binary values are sent the same way;
the init drops the NUL). Descriptors travel with a message's first bytes (SCM_RIGHTS).

Not pickle, not JSON: the reader is a small C program that runs inside the container's
namespaces, and a flat list of tagged strings is what it can check in a few lines. The tags are
defined here and in init.c (``parse_config``, ``parse_plan``); an unknown tag is ignored there.
"""

from __future__ import annotations

import os
import socket
import struct

# message types
CONFIG = b"C"  # to the helper, first: what to make
ROOTFS = b"R"  # to PID 1 of a sandbox: assemble this root filesystem now (speculation)
ARM = b"A"  # to PID 1: get ready for exactly this plan (speculation), a GO starts it
START = b"S"  # to PID 1: this plan, with the stdio
GO = b"G"  # to PID 1: the armed plan, with the stdio
RELEASE = b"X"  # to PID 1 after its exit was reported: it may exit now
EXEC = b"E"  # to an exec helper: the plan, with stdio, the root and the namespaces

# CONFIG fields
MODE, NS_FLAGS, NEW_NETNS, USERNS, UID_MAP, GID_MAP, NPROCS, PARENT, DUMPABLE = (bytes([c]) for c in b"mfnuUGpPD")

# plan fields (ROOTFS, ARM, START, EXEC)
PLAN_TAGS = {
    "rootfs": b"r", "store": b"w", "overlay": b"o", "fuse_overlayfs": b"O", "dev_userns": b"d",
    "new_netns": b"n", "cgroup_mount": b"g", "mount": b"M", "masked": b"k", "readonly": b"K",
    "privileged": b"V", "readonly_rootfs": b"Y", "rootfs_ready": b"Q", "hostname": b"h", "user": b"x",
    "argv": b"a", "env": b"e", "cwd": b"W", "init": b"i", "caps": b"c", "last_cap": b"L",
    "no_new_privs": b"Z", "seccomp": b"S", "rlimit": b"l", "linger": b"y", "userns": b"t",
    "namespace": b"j", "device": b"v", "shm_size": b"z",
}

MAX_FDS = 16  # the init reads at most this many descriptors with one message
_HEAD = struct.Struct("<I")
_FIELD = struct.Struct("<BI")


def _bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return str(value).encode()
    return os.fsencode(value)


def encode(kind: bytes, fields) -> bytes:
    """One message: ``fields`` is a list of (tag, value); a value with several NUL-separated
    parts is a tuple (a mount, a cgroup mount)."""
    parts = [kind]
    for tag, value in fields:
        if isinstance(value, tuple):
            data = b"".join(_bytes(v).replace(b"\0", b"") + b"\0" for v in value)
        else:
            data = _bytes(value)
            if b"\0" in data and tag != PLAN_TAGS["seccomp"]:
                raise ValueError(f"a NUL byte in {data[:40]!r}")
            data += b"\0"
        parts.append(_FIELD.pack(tag[0], len(data)))
        parts.append(data)
    body = b"".join(parts)
    return _HEAD.pack(len(body)) + body


def send(sock: socket.socket, kind: bytes, fields=(), fds=()) -> None:
    data = encode(kind, fields)
    if len(fds) > MAX_FDS:
        raise ValueError(f"at most {MAX_FDS} descriptors in one message")
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def config_fields(*, exec_mode: bool, ns_flags: int, new_netns: bool, idmap, nprocs: int,
                  dumpable: bool) -> list:
    fields = [(MODE, "exec" if exec_mode else "sandbox"), (NS_FLAGS, ns_flags), (NEW_NETNS, new_netns),
              (NPROCS, nprocs), (PARENT, os.getpid()), (DUMPABLE, dumpable)]
    if idmap is None:
        fields.append((USERNS, "none"))
    else:
        fields.append((USERNS, "full" if idmap.full else "single"))
        fields += [(UID_MAP, f"{a} {b} {c}") for a, b, c in idmap.uids]
        fields += [(GID_MAP, f"{a} {b} {c}") for a, b, c in idmap.gids]
    return fields


def rootfs_fields(plan: dict) -> list:
    """The root filesystem part of a plan (see Engine.rootfs_plan)."""
    t = PLAN_TAGS
    fields = [(t["rootfs"], plan["rootfs"]), (t["new_netns"], plan["network"] != "host"),
              (t["dev_userns"], plan.get("userns") or "none"), (t["privileged"], plan.get("privileged", False)),
              (t["readonly_rootfs"], plan.get("readonly_rootfs", False))]
    if plan.get("store"):
        fields.append((t["store"], plan["store"]))
    fields.append((t["fuse_overlayfs"] if plan.get("fuse_overlayfs") else t["overlay"], plan["overlay"]))
    for host_dir, name in plan.get("cgroup_mounts") or ():
        fields.append((t["cgroup_mount"], (host_dir, name)))
    for m in plan["mounts"]:
        fields.append((t["mount"], (m["type"], m.get("source", ""), m["destination"], bool(m.get("readonly")),
                                    bool(m.get("is_dir", True)), int(m.get("flags", 0)),
                                    ",".join(m.get("options") or ()))))
    fields += [(t["device"], tuple(d)) for d in plan.get("devices") or ()]
    if plan.get("shm_size"):
        fields.append((t["shm_size"], plan["shm_size"]))
    if not plan.get("privileged"):
        from .rootfs import MASKED_PATHS, READONLY_PATHS

        fields += [(t["masked"], p) for p in MASKED_PATHS]
        fields += [(t["readonly"], p) for p in READONLY_PATHS]
    return fields


def process_fields(plan: dict) -> list:
    """Who and what runs: user, command, environment, security (see Engine.plan_for)."""
    from ..linux import caps as lcaps

    t = PLAN_TAGS
    fields = [(t["user"], plan.get("user") or ""), (t["cwd"], plan["cwd"]), (t["init"], plan.get("init", True)),
              (t["caps"], lcaps.caps_mask(plan["caps"])), (t["last_cap"], lcaps.LAST_CAP),
              (t["privileged"], plan.get("privileged", False)), (t["userns"], plan.get("userns") or "none")]
    if plan.get("hostname"):
        fields.append((t["hostname"], plan["hostname"]))
    fields += [(t["argv"], a) for a in plan["argv"]]
    fields += [(t["env"], f"{k}={v}") for k, v in plan["env"].items()]
    if plan.get("seccomp"):
        fields.append((t["seccomp"], plan["seccomp"]))
    if plan.get("no_new_privs") is not None:
        fields.append((t["no_new_privs"], plan["no_new_privs"]))
    fields += [(t["rlimit"], " ".join(map(str, r))) for r in plan.get("rlimits") or ()]
    return fields
