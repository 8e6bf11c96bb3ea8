"""Addresses: subnets as (network, prefix) integers, the default pools, and allocation.

No ``ipaddress`` import on the launch path: an address is four bytes and a subnet two integers.
"""

from __future__ import annotations

import socket
import struct

from .. import errors

# docker's default pools: 172.17-31.0.0/16, then 192.168.0.0/20 blocks
DEFAULT_POOLS = [(f"172.{n}.0.0", 16) for n in range(17, 32)] + [(f"192.168.{n}.0", 20) for n in range(0, 256, 16)]


def ip2int(ip: str) -> int:
    try:
        return struct.unpack("!I", socket.inet_aton(ip))[0] if ip.count(".") == 3 else _bad(ip)
    except OSError:
        return _bad(ip)


def _bad(ip: str) -> int:
    raise errors.UsageError(f"invalid IPv4 address: {ip!r}")


def int2ip(n: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", n))


def parse_cidr(text: str) -> tuple[int, int]:
    """'172.18.0.0/16' -> (network int, prefix); host bits must be zero, like docker asks."""
    addr, sep, plen = text.partition("/")
    if not sep or not plen.isdigit() or not 8 <= int(plen) <= 30:
        raise errors.UsageError(f"invalid subnet {text!r}: an IPv4 CIDR with a prefix of /8 to /30 is expected")
    net, prefix = ip2int(addr), int(plen)
    if net & ~mask(prefix) & 0xFFFFFFFF:
        raise errors.UsageError(f"invalid subnet {text!r}: host bits are set (did you mean {int2ip(net & mask(prefix))}/{prefix}?)")
    return net, prefix


def mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def cidr(net: int, prefix: int) -> str:
    return f"{int2ip(net)}/{prefix}"


def contains(net: int, prefix: int, ip: int) -> bool:
    return ip & mask(prefix) == net


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    p = min(a[1], b[1])
    return a[0] & mask(p) == b[0] & mask(p)


def host_routes() -> list[tuple[int, int]]:
    """The IPv4 routes of this network namespace (``/proc/net/route``), default route excluded."""
    return [(net, prefix) for net, prefix, _dev in routes()]


def routes() -> list[tuple[int, int, str]]:
    """(network, prefix, device) of the IPv4 routes of this namespace, default route excluded."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 8:
                    continue
                # the kernel prints both in host byte order
                dest, m = socket.ntohl(int(parts[1], 16)), socket.ntohl(int(parts[7], 16))
                if m == 0:
                    continue
                prefix = bin(m).count("1")
                out.append((dest & mask(prefix), prefix, parts[0]))
    except OSError:
        pass
    return out


def pick_subnet(taken: list[tuple[int, int]]) -> tuple[int, int]:
    """The first default pool that overlaps no other network and no route of this namespace."""
    busy = taken + host_routes()
    for addr, prefix in DEFAULT_POOLS:
        cand = (ip2int(addr), prefix)
        if not any(overlaps(cand, t) for t in busy):
            return cand
    raise errors.RuntimeFailure("no free address pool for a new network: give one with --subnet")


def allocate(net: int, prefix: int, gateway: int, used: set[int], prefer: int = 0, avoid: set[int] = frozenset()) -> int:
    """The lowest free host address (``prefer`` when free); ``avoid`` holds softly reserved
    addresses (stopped containers') that are handed out only when nothing else is left."""
    first, last = net + 1, (net | ~mask(prefix) & 0xFFFFFFFF) - 1
    if prefer and first <= prefer <= last and prefer != gateway and prefer not in used:
        return prefer
    fallback = 0
    for ip in range(first, last + 1):
        if ip == gateway or ip in used:
            continue
        if ip in avoid:
            fallback = fallback or ip
            continue
        return ip
    if fallback:
        return fallback
    raise errors.RuntimeFailure(f"no available IPv4 addresses on network {cidr(net, prefix)}")
