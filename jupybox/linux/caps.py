"""Linux capabilities: the name table, docker's default set and rules, and applying a set to this process.

``resolve_caps`` follows moby's ``oci/caps.TweakCapabilities``: privileged gets every capability the
kernel knows; ``--cap-add ALL`` gives all but the dropped ones; ``--cap-drop ALL`` keeps only the added
ones; otherwise defaults minus drops plus adds. Names are case-insensitive, with or without ``CAP_``.

Applying a set (bounding, permitted, effective; inheritable and ambient empty) happens in C, in the
child that execs the container's command: see ``_spawn.c``.
"""

from __future__ import annotations

__all__ = [
    "CAP_NAMES", "CAP_NUMBERS", "LAST_CAP", "ALL_CAPS", "DOCKER_DEFAULT_CAPS", "cap_number", "cap_names",
    "caps_mask", "resolve_caps", "current_caps",
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


def current_caps(pid: int | str = "self") -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process, as ints, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, _, value = line.partition(":")
                out[key] = int(value.strip(), 16)
    return out
