"""Linux capabilities: the name table, docker's default set and rules, and applying a set to this process.

``resolve_caps`` follows moby's ``oci/caps.TweakCapabilities``: privileged gets every capability the
kernel knows; ``--cap-add ALL`` gives all but the dropped ones; ``--cap-drop ALL`` keeps only the added
ones; otherwise defaults minus drops plus adds. Names are case-insensitive, with or without ``CAP_``.

``apply_caps`` runs in the container's child before exec: it drops the rest of the bounding set,
clears the ambient set and sets permitted = effective = inheritable = ``keep`` with capset(2).
"""

from __future__ import annotations

import ctypes

from jupybox.linux.syscalls import (
    PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, PR_CAPBSET_READ, _fn, _get_errno,
    _prctl, _strerror,
)

__all__ = [
    "CAP_NAMES", "CAP_NUMBERS", "LAST_CAP", "ALL_CAPS", "DOCKER_DEFAULT_CAPS", "cap_number", "cap_names",
    "caps_mask", "resolve_caps", "apply_caps", "current_caps",
]

#: capability numbers, linux/capability.h (0 .. 40 as of Linux 5.9)
CAP_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(CAP_NAMES)}


def _kernel_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return min(int(f.read()), len(CAP_NAMES) - 1)
    except (OSError, ValueError):  # pragma: no cover - /proc not mounted
        return len(CAP_NAMES) - 1


#: the highest capability both this table and the running kernel know
LAST_CAP: int = _kernel_last_cap()
#: every capability the running kernel supports (what --privileged gets)
ALL_CAPS: frozenset[int] = frozenset(range(LAST_CAP + 1))

#: docker's default capabilities (moby oci/caps/defaults.go)
DOCKER_DEFAULT_CAPS: frozenset[int] = frozenset(CAP_NUMBERS["CAP_" + n] for n in (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
))


def cap_number(name: str) -> int:
    """``"net_admin"``, ``"CAP_NET_ADMIN"`` -> 12; ValueError for an unknown name."""
    n = name.strip().upper()
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    try:
        return CAP_NUMBERS[n]
    except KeyError:
        raise ValueError(f"unknown capability: {name!r}") from None


def cap_names(caps) -> list[str]:
    """Numbers -> sorted names (numbers beyond the table print as ``CAP_<n>``)."""
    return [CAP_NAMES[c] if 0 <= c < len(CAP_NAMES) else f"CAP_{c}" for c in sorted(caps)]


def caps_mask(caps) -> int:
    """The bit mask the kernel shows in /proc/self/status (CapEff etc.)."""
    m = 0
    for c in caps:
        m |= 1 << c
    return m


def _normalize(names) -> set:
    out = set()
    for name in names or ():
        if not isinstance(name, str):
            raise ValueError(f"capability names must be strings, not {name!r}")
        if name.strip().upper() == "ALL":
            out.add("ALL")
        else:
            out.add(cap_number(name))
    return out


def resolve_caps(add=(), drop=(), privileged: bool = False,
                 defaults=DOCKER_DEFAULT_CAPS) -> set[int]:
    """The capability numbers a container gets, by docker's rules (moby TweakCapabilities).

    Unknown names raise ValueError even when privileged (docker validates them first too).
    Capabilities the running kernel does not know are left out silently, as runc does.
    """
    adds, drops = _normalize(add), _normalize(drop)
    if privileged:
        return set(ALL_CAPS)
    if "ALL" in adds:
        caps = set(ALL_CAPS) - drops
    elif "ALL" in drops:
        caps = adds - {"ALL"}
    else:
        caps = (set(defaults) - drops) | adds
    caps.discard("ALL")
    return {c for c in caps if c <= LAST_CAP}


# ---- capget/capset (linux/capability.h, _LINUX_CAPABILITY_VERSION_3: two 32-bit words) ----
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CapData2 = _CapData * 2
_capget = _fn("capget", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_capset = _fn("capset", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# Preallocated once (in the parent): building ctypes objects in a freshly forked child costs tens of
# microseconds of copy-on-write faults each, so the child only fills these in.
_hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
_data = _CapData2()
_hdr_addr, _data_addr = ctypes.addressof(_hdr), ctypes.addressof(_data)
_lo, _hi = _data[0], _data[1]


def _get_permitted() -> int:
    _hdr.version, _hdr.pid = _LINUX_CAPABILITY_VERSION_3, 0
    if _capget(_hdr_addr, _data_addr) != 0:
        e = _get_errno()
        raise OSError(e, f"capget: {_strerror(e)}")
    return _lo.permitted | (_hi.permitted << 32)


def apply_caps(keep, *, inheritable: bool = True) -> None:
    """Reduce this process to the capabilities ``keep`` (numbers), for itself and everything it execs.

    1. drop every other capability from the bounding set (PR_CAPBSET_DROP; needs CAP_SETPCAP, so
       this comes first, while we still have it);
    2. clear the ambient set;
    3. capset: permitted = effective = ``keep`` and inheritable = ``keep`` (or empty when
       ``inheritable=False``, what docker does since 20.10.14 / CVE-2022-24769).

    ``keep`` is silently clamped to what this process is permitted now (e.g. --privileged on a host
    whose runtime lacks one capability): a process can never gain capabilities by capset.
    Run it after setuid/setgid changes (with keepcaps) and before load_filter and exec.
    """
    want = 0
    for c in keep:
        want |= 1 << c
    want &= _get_permitted()
    for c in range(LAST_CAP + 1):
        if not (want >> c) & 1 and _prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0:
            e = _get_errno()
            if _prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 0:
                continue  # already out of the bounding set (dropping again needs CAP_SETPCAP)
            raise OSError(e, f"drop {CAP_NAMES[c]} from the bounding set: {_strerror(e)}")
    if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        e = _get_errno()
        if e != 22:  # EINVAL: kernel without ambient capabilities (< 4.3): nothing to clear
            raise OSError(e, f"clear ambient capabilities: {_strerror(e)}")
    lo, hi = want & 0xFFFFFFFF, want >> 32
    _hdr.version, _hdr.pid = _LINUX_CAPABILITY_VERSION_3, 0
    _lo.effective = _lo.permitted = lo
    _hi.effective = _hi.permitted = hi
    _lo.inheritable, _hi.inheritable = (lo, hi) if inheritable else (0, 0)
    if _capset(_hdr_addr, _data_addr) != 0:
        e = _get_errno()
        raise OSError(e, f"capset {want:#x}: {_strerror(e)}")


def current_caps(pid: int | str = "self") -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process, as ints, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, _, value = line.partition(":")
                out[key] = int(value.strip(), 16)
    return out
