"""Container networking: bridge networks, published ports, containers that find each other by name.

    ipam.py      subnets and addresses as integers; default pools that avoid the namespace's routes
    netlink.py   the launch fast path: veth pair into the container's namespace, address, route
                 and the requests bridge.py needs (hand-encoded rtnetlink: see there why not pyroute2)
    bridge.py    bridges and stale links: create, first use, rm, prune (netlink.py's requests)
    nat.py       one nftables table per jupybox root: masquerade, DNAT maps for published ports
    ports.py     docker's -p syntax, host port reservations held by the container's monitor
    etc.py       /etc/hosts (name resolution on user networks) and /etc/resolv.conf
    manager.py   the state files, their lock, create/remove/inspect/prune of networks
    endpoints.py a container on its networks: attach/detach, connect/disconnect, hosts files

How a bridge container starts (``Engine.start``): the sandbox's PID 1 exists in a new network
namespace (made ahead of time by a prewarm, or now); under the lock the container gets an
address (the lowest free one, or the one it had before), its published ports are reserved and
added to the NAT maps, its hosts file and its peers' are written; then, outside the lock, a veth
pair is made with one end on the bridge and the other in the namespace, which gets the address
and the default route; only then is the plan sent and the command exec'ed.

This module is imported only for containers on a bridge or user network: ``none`` and ``host``
never load it.
"""

from __future__ import annotations

import re

from .. import errors

BUILTIN = ("bridge", "host", "none")
DEFAULT = "bridge"
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise errors.UsageError(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def networks(layout):
    from .manager import Networks

    return Networks(layout)


def check_spec(layout, spec, image_config: dict) -> list[dict]:
    """At create: the network exists, the options fit it; -> the ports to publish (with -P's)."""
    from . import etc
    from . import ports as portlib

    name = spec.network
    for item in spec.add_hosts or []:
        etc.parse_add_host(item)
    for server in spec.dns or []:
        import socket

        try:
            socket.inet_pton(socket.AF_INET6 if ":" in server else socket.AF_INET, server)
        except OSError:
            raise errors.UsageError(f"invalid argument {server!r} for --dns: an IP address is expected") from None
    if name in ("none", "host"):
        if spec.network_aliases:
            raise errors.UsageError("network-scoped aliases are only supported for user-defined networks")
        if name == "none" and (spec.ports or spec.publish_all):
            raise errors.UsageError("published ports need a bridge network: they cannot be used with --network none")
        return []
    if name.startswith("container:"):
        raise errors.UsageError(f"network mode {name!r} is not supported: use bridge, none, host or a network name")
    check_name(name)
    if name != DEFAULT:
        if not (layout.root / "networks" / f"{name}.json").exists():
            raise errors.NotFound(f"network {name} not found")
    elif spec.network_aliases:
        raise errors.UsageError("network-scoped aliases are only supported for user-defined networks")
    ports = portlib.normalize(spec.ports)
    if spec.publish_all:
        ports = portlib.merge_publish_all(ports, image_config)
    return ports


def attach(layout, rec, pid: int):
    """Connect the container whose PID 1 is ``pid`` to its networks; -> its Attachment."""
    return networks(layout).attach(rec, pid)


def release(layout, cid: str, attachment=None, forget: bool = False) -> None:
    """After the container's exit (or a failed start): its endpoints, ports and veths go.

    Never raises: cleanup must go on, and ``prune`` reconciles whatever this could not do."""
    try:
        if attachment is not None:
            attachment.close()
        networks(layout).detach(cid, attachment.owner if attachment is not None else None, forget=forget)
    except (errors.JupyboxError, OSError):
        pass


def extend_etc(cdir, spec) -> None:
    """--add-host and --dns for a container without a bridge network (none, host)."""
    from . import etc

    if spec.add_hosts:
        with open(cdir / "hosts", "a") as f:
            for item in spec.add_hosts:
                host, ip = etc.parse_add_host(item)
                f.write(f"{ip}\t{host}\n")
    if spec.dns:
        etc.write_in_place(cdir / "resolv.conf", etc.render_resolv(list(spec.dns)))
