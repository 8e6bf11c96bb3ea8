"""docker's ``--ulimit NAME=SOFT[:HARD]``: resource limits of the container's processes.

The values are the kernel's (bytes for ``stack``, seconds for ``cpu``...), -1 is unlimited, a
single value sets both. A hard limit can only be raised with CAP_SYS_RESOURCE, which the service
may lack (a VM's root often does): one above the service's own is refused when the container is
created, in one line, rather than silently lowered.
"""

from __future__ import annotations

import resource

from ..errors import UsageError

# docker's names (go-units ulimit.go) -> Linux's resource numbers
NAMES = {
    "core": resource.RLIMIT_CORE, "cpu": resource.RLIMIT_CPU, "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE, "locks": 10, "memlock": resource.RLIMIT_MEMLOCK,
    "msgqueue": resource.RLIMIT_MSGQUEUE, "nice": resource.RLIMIT_NICE, "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC, "rss": resource.RLIMIT_RSS, "rtprio": resource.RLIMIT_RTPRIO,
    "rttime": resource.RLIMIT_RTTIME, "sigpending": resource.RLIMIT_SIGPENDING, "stack": resource.RLIMIT_STACK,
}
MAX_VALUE = 2**63 - 1


def _value(text: str, given: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UsageError(f"invalid --ulimit {given!r}: {text!r} is not a whole number") from None
    if v < -1 or v > MAX_VALUE:
        raise UsageError(f"invalid --ulimit {given!r}: {v} is out of range (-1 for unlimited)")
    return v


def parse_ulimit(item) -> dict:
    """NAME=SOFT[:HARD] (or a {name, soft, hard} dict, as a spec keeps it) -> {name, soft, hard}."""
    if isinstance(item, dict):
        name, soft, hard = item.get("name"), item.get("soft"), item.get("hard")
        given = f"{name}={soft}:{hard}"
        soft, hard = _value(str(soft), given), _value(str(hard), given)
    else:
        given = str(item)
        name, sep, values = given.partition("=")
        if not sep or not values:
            raise UsageError(f"invalid --ulimit {given!r}: NAME=SOFT[:HARD] is expected")
        s, _, h = values.partition(":")
        soft = _value(s, given)
        hard = _value(h, given) if h else soft
    if name not in NAMES:
        raise UsageError(f"invalid --ulimit {given!r}: unknown name {name!r} (one of {', '.join(sorted(NAMES))})")
    if _inf(soft) > _inf(hard):
        raise UsageError(f"invalid --ulimit {given!r}: the soft limit must be less than or equal to the hard limit")
    return {"name": name, "soft": soft, "hard": hard}


def _inf(v: int) -> float:
    return float("inf") if v == -1 else v


def parse_ulimits(items) -> list[dict]:
    out = [parse_ulimit(u) for u in items or ()]
    names = [u["name"] for u in out]
    for n in set(names):
        if names.count(n) > 1:
            raise UsageError(f"--ulimit {n} given twice")
    return out


def check(ulimits: list[dict]) -> list[dict]:
    """``ulimits`` checked against this process's own hard limits (the service's: the container's
    processes are its descendants)."""
    out = parse_ulimits(ulimits)
    for u in out:
        _, own = resource.getrlimit(NAMES[u["name"]])
        if own != resource.RLIM_INFINITY and _inf(u["hard"]) > own:
            hard = "unlimited" if u["hard"] == -1 else u["hard"]
            raise UsageError(f"--ulimit {u['name']}: a hard limit of {hard} is above this jupybox service's own "
                             f"({own}): raising one needs CAP_SYS_RESOURCE, which it does not have")
    return out


def merged(ulimits: list[dict], standins: list) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for PID 1's plan: the --ulimit values, and the rlimits that stand in
    for cgroups where there are none (rootless), the lower of the two where both apply."""
    out: dict[int, tuple[int, int]] = {NAMES[u["name"]]: (u["soft"], u["hard"]) for u in ulimits}
    for res, value in standins:
        if res in out:
            s, h = out[res]
            out[res] = (value if s == -1 else min(s, value), value if h == -1 else min(h, value))
        else:
            out[res] = (value, value)
    return sorted((res, s, h) for res, (s, h) in out.items())
