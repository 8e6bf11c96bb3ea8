"""Bridges and stale links, through pyroute2 (netlink, never ``ip``).

Used when a network is created, first used in a network namespace, removed, and by ``prune``:
never on the launch path (see ``netlink.py`` for why).
"""

from __future__ import annotations

import errno
import os

from .. import errors


def _off_the_event_loop(fn):
    """pyroute2 runs an asyncio loop of its own, which fails in a thread that already runs one (a
    notebook kernel's main thread): there, the call is made in a short-lived thread."""
    import functools

    @functools.wraps(fn)
    def call(*args, **kwargs):
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        import threading

        box: dict = {}

        def run():
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                box["error"] = e

        t = threading.Thread(target=run, name="jupybox-netlink")
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    return call


def _iproute():
    try:
        from pyroute2 import IPRoute
    except ImportError:
        raise errors.RuntimeFailure("pyroute2 is not installed: bridge networks need it (pip install pyroute2)") from None
    return IPRoute()


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise errors.RuntimeFailure(f"setting {path.replace('/proc/sys/', '').replace('/', '.')}: {e.strerror}") from None


def _error(what: str, e: Exception) -> errors.RuntimeFailure:
    code = getattr(e, "code", None) or getattr(e, "errno", None)
    msg = os.strerror(code) if isinstance(code, int) and code > 0 else str(e)
    return errors.RuntimeFailure(f"{what}: {msg}")


@_off_the_event_loop
def ensure(name: str, gateway: str, prefixlen: int, mac: str, alias: str = "", ports: list[str] = ()) -> bool:
    """The bridge ``name`` exists (with ``alias``: its owner, see ``ownership``), is up and has
    ``gateway/prefixlen``; forwarding is on. ``ports``: veths to put back on it when it had to be
    made again (someone deleted it while containers ran). True if it was made now."""
    ipr = _iproute()
    made = False
    try:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            try:
                ipr.link("add", ifname=name, kind="bridge", address=mac)
                made = True
            except Exception as e:  # noqa: BLE001 - pyroute2's NetlinkError carries .code
                if getattr(e, "code", None) != errno.EEXIST:
                    raise _error(f"creating bridge {name}", e) from None
            idx = ipr.link_lookup(ifname=name)
        index = idx[0]
        if alias:
            ipr.link("set", index=index, ifalias=alias)
        if made:
            for port in ports:
                pidx = ipr.link_lookup(ifname=port)
                if pidx:
                    try:
                        ipr.link("set", index=pidx[0], master=index)
                    except Exception:  # noqa: BLE001 - a veth going away meanwhile
                        pass
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if gateway not in have:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            except Exception as e:  # noqa: BLE001
                if getattr(e, "code", None) != errno.EEXIST:
                    raise _error(f"adding {gateway}/{prefixlen} to {name}", e) from None
        ipr.link("set", index=index, state="up")
    finally:
        ipr.close()
    # published ports reached from 127.0.0.1 are DNATed into the bridge with their loopback
    # source: allowed by route_localnet (and masqueraded, see nat.py)
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    return made


@_off_the_event_loop
def aliases() -> dict[str, str]:
    """link name -> alias, for the links of this namespace that have one."""
    ipr = _iproute()
    try:
        out = {}
        for ln in ipr.get_links():
            alias = ln.get_attr("IFLA_IFALIAS")
            if alias:
                out[ln.get_attr("IFLA_IFNAME")] = alias
        return out
    finally:
        ipr.close()


@_off_the_event_loop
def delete(name: str) -> None:
    ipr = _iproute()
    try:
        idx = ipr.link_lookup(ifname=name)
        if idx:
            try:
                ipr.link("del", index=idx[0])
            except Exception as e:  # noqa: BLE001
                if getattr(e, "code", None) != errno.ENODEV:
                    raise _error(f"deleting bridge {name}", e) from None
    finally:
        ipr.close()


@_off_the_event_loop
def ports_of(bridges: set[str]) -> dict[str, str]:
    """veth name -> bridge name, for every link enslaved to one of ``bridges``."""
    ipr = _iproute()
    try:
        links = ipr.get_links()
        index = {ln["index"]: ln.get_attr("IFLA_IFNAME") for ln in links}
        out = {}
        for ln in links:
            master = index.get(ln.get_attr("IFLA_MASTER"))
            if master in bridges:
                out[ln.get_attr("IFLA_IFNAME")] = master
        return out
    finally:
        ipr.close()


@_off_the_event_loop
def delete_links(names: list[str]) -> list[str]:
    """Delete these links; returns the names that were there."""
    if not names:
        return []
    ipr = _iproute()
    gone = []
    try:
        for name in names:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                continue
            try:
                ipr.link("del", index=idx[0])
                gone.append(name)
            except Exception as e:  # noqa: BLE001
                if getattr(e, "code", None) != errno.ENODEV:
                    raise _error(f"deleting {name}", e) from None
    finally:
        ipr.close()
    return gone
