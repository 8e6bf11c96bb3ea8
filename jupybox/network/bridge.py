"""Bridges and stale links (netlink through ``netlink.Rtnl``, never ``ip``).

Used when a network is created, first used in a network namespace, removed, and by ``prune`` and
the service's collection of what a deleted store left.
"""

from __future__ import annotations

import errno
import os
import socket

from .. import errors
from .netlink import Rtnl, link_index, parse_mac


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise errors.RuntimeFailure(f"setting {path.replace('/proc/sys/', '').replace('/', '.')}: {e.strerror}") from None


def _error(what: str, e: OSError) -> errors.RuntimeFailure:
    return errors.RuntimeFailure(f"{what}: {os.strerror(e.errno) if e.errno else e}")


def ensure(name: str, gateway: str, prefixlen: int, mac: str, alias: str = "", ports: list[str] = ()) -> bool:
    """The bridge ``name`` exists (with ``alias``: its owner, see ``ownership``), is up and has
    ``gateway/prefixlen``; forwarding is on. ``ports``: veths to put back on it when it had to be
    made again (someone deleted it while containers ran). True if it was made now."""
    made = False
    with Rtnl() as rt:
        index = link_index(name)
        if not index:
            try:
                rt.add_bridge(name, parse_mac(mac))
                made = True
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise _error(f"creating bridge {name}", e) from None
            index = link_index(name)
            if not index:
                raise errors.RuntimeFailure(f"creating bridge {name}: it went away at once")
        try:
            if alias:
                rt.set_alias(index, alias)
            if made:
                for port in ports:
                    pidx = link_index(port)
                    if pidx:
                        try:
                            rt.set_master(pidx, index)
                        except OSError:
                            pass  # a veth going away meanwhile
            if gateway not in rt.ipv4_addresses(index):
                try:
                    rt.add_addr(index, socket.inet_aton(gateway), prefixlen)
                except OSError as e:
                    if e.errno != errno.EEXIST:
                        raise _error(f"adding {gateway}/{prefixlen} to {name}", e) from None
            rt.set_up(index)
        except OSError as e:
            raise _error(f"setting up bridge {name}", e) from None
    # published ports reached from 127.0.0.1 are DNATed into the bridge with their loopback
    # source: allowed by route_localnet (and masqueraded, see nat.py)
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    return made


def _links() -> list[dict]:
    with Rtnl() as rt:
        try:
            return rt.links()
        except OSError as e:
            raise _error("listing the network links", e) from None


def aliases() -> dict[str, str]:
    """link name -> alias, for the links of this namespace that have one."""
    return {ln["name"]: ln["alias"] for ln in _links() if ln["alias"]}


def delete(name: str) -> None:
    with Rtnl() as rt:
        try:
            rt.delete(name)  # False (nothing done) when it is already gone
        except OSError as e:
            raise _error(f"deleting bridge {name}", e) from None


def ports_of(bridges: set[str]) -> dict[str, str]:
    """veth name -> bridge name, for every link enslaved to one of ``bridges``."""
    links = _links()
    names = {ln["index"]: ln["name"] for ln in links}
    return {ln["name"]: names[ln["master"]] for ln in links if names.get(ln["master"]) in bridges}


def delete_links(names: list[str]) -> list[str]:
    """Delete these links; returns the names that were there."""
    if not names:
        return []
    gone = []
    with Rtnl() as rt:
        for name in names:
            try:
                if rt.delete(name):
                    gone.append(name)
            except OSError as e:
                raise _error(f"deleting {name}", e) from None
    return gone
