"""Networks on disk and in the kernel: create, remove, inspect, garbage-collect (the containers on
them: ``endpoints``).

State lives in ``<root>/networks/<name>.json``, one file per network, changed only under
``<root>/networks/.lock`` (flock)::

    {"name", "id", "driver": "bridge", "bridge": "jbx-<id>", "subnet", "gateway", "mac",
     "builtin": true for "bridge", "created", "labels",
     "endpoints": {cid: {"name", "hostname", "ip", "mac", "veth", "ifname", "aliases",
                         "extra_hosts", "ports": [...], "owner": [pid, start]}},
     "reserved":  {cid: ip}}

An endpoint is *live* while its ``owner`` — the container's PID 1, whose network namespace it
is — runs (pid and start time, so a reused pid does not count). Anything a crash leaves behind
(an endpoint whose owner died, its map elements, its veth) is found by that test: by the next
allocation that needs the address or port, by ``reconcile`` of that container, by ``prune``.
``reserved`` keeps a stopped container's last address for its next start (given to another
container only when the subnet has nothing else left); ``rm`` drops it.

A container's networks are ``containers/<id>/networks.json`` when ``network connect`` or
``disconnect`` changed them, else its spec's ``network`` (with ``--network-alias``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os

from .. import errors
from ..units import now_iso
from . import BUILTIN, DEFAULT, NAME, check_name, ipam, nat, netlink
from .endpoints import Endpoints, alive, veth_name

_DECODER = json.JSONDecoder()


class Networks(Endpoints):
    def __init__(self, layout):
        self.layout = layout
        self.dir = layout.root / "networks"
        self.table = nat.table_name(layout.root)

    # -- files ---------------------------------------------------------------------------------
    def path(self, name: str):
        return self.dir / f"{name}.json"

    @contextlib.contextmanager
    def lock(self):
        self.dir.mkdir(mode=0o755, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self, name: str) -> dict | None:
        try:
            with open(self.path(name), "rb") as f:
                data = f.read().decode()
        except FileNotFoundError:
            return None
        if not data.strip():
            return None  # a creation killed between open and write: no network
        try:
            # what follows the document is the tail of a longer previous version (see save)
            return _DECODER.raw_decode(data)[0]
        except ValueError:
            raise errors.StoreError(f"network {name}: damaged state file {self.path(name)}") from None

    def load_all(self) -> dict[str, dict]:
        out = {}
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return out
        for fn in names:
            if fn.endswith(".json") and not fn.startswith("."):
                net = self.load(fn[:-5])
                if net is not None:
                    out[net["name"]] = net
        return out

    def save(self, net: dict) -> None:
        """In place, under the lock: one pwrite of the whole document, then a truncate.

        A kill between the two leaves the new document followed by the old one's tail, which
        ``load`` ignores; a kill cannot split the write itself. (A write-and-rename costs a
        rename, ~0.3 ms here, twice per container run.)"""
        data = json.dumps(net, separators=(",", ":")).encode()
        fd = os.open(self.path(net["name"]), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.pwrite(fd, data, 0) != len(data):
                raise errors.StoreError(f"network {net['name']}: short write to its state file")
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def get(self, name: str, make_default: bool = True) -> dict | None:
        """A network by name, id or id prefix; the default bridge is made on first use (or, with
        ``make_default`` false, None while it has never been used)."""
        net = self.load(name) if NAME.match(name or "") else None
        if net is not None:
            return net
        if name == DEFAULT:
            return self.create(DEFAULT, builtin=True, exist_ok=True) if make_default else None
        matches = [n for n in self.load_all().values() if len(name) >= 3 and n["id"].startswith(name)]
        if len(matches) == 1:
            return matches[0]
        raise errors.NotFound(f"network {name} not found")

    # -- networks ------------------------------------------------------------------------------
    def create(self, name: str, subnet: str | None = None, gateway: str | None = None, labels: dict | None = None,
               builtin: bool = False, exist_ok: bool = False) -> dict:
        """The state of a new network; its bridge and NAT are made now (and again on first use in
        another network namespace)."""
        check_name(name)
        if name in ("host", "none") or (name == DEFAULT and not builtin):
            raise errors.Conflict(f"network with name {name} already exists (it is pre-defined)")
        with self.lock():
            nets = self.load_all()
            if name in nets:
                if exist_ok:
                    return nets[name]
                raise errors.Conflict(f"network with name {name} already exists")
            taken = [ipam.parse_cidr(n["subnet"]) for n in nets.values()]
            if subnet:
                sub = ipam.parse_cidr(subnet)
                for other in nets.values():
                    if ipam.overlaps(sub, ipam.parse_cidr(other["subnet"])):
                        raise errors.Conflict(f"subnet {subnet} overlaps with network {other['name']} ({other['subnet']})")
            else:
                sub = ipam.pick_subnet(taken)
            net_int, prefix = sub
            if gateway:
                gw = ipam.ip2int(gateway)
                if not ipam.contains(net_int, prefix, gw) or gw in (net_int, net_int | ~ipam.mask(prefix) & 0xFFFFFFFF):
                    raise errors.UsageError(f"gateway {gateway} is not a host address of subnet {ipam.cidr(*sub)}")
            else:
                gw = None
            net = self._new(name, sub, gw, builtin, labels or {})
            self.save(net)
            nets[name] = net
            try:
                self._ensure_kernel(net, nets, force=True)
            except BaseException:
                os.unlink(self.path(name))
                if netlink.link_index(net["bridge"]):
                    try:
                        from . import bridge

                        bridge.delete(net["bridge"])
                    except errors.JupyboxError:
                        pass
                raise
        self.layout.bump_generation()
        return net

    def _ensure_kernel(self, net: dict, nets: dict, force: bool = False) -> int:
        """The bridge's index, after making it (and the NAT table) if this namespace lacks it: at the
        network's first use, or after someone deleted it (it comes back with its subnet, and the
        veths of the containers still running are put back on it)."""
        index = netlink.link_index(net["bridge"])
        if index and not force:
            return index
        nat.nft_binary()  # before any kernel object: a missing nft is a one-line error
        from . import bridge, ownership

        collect_orphans(self.layout)  # the subnet may be held by the bridge of a store that is gone
        sub, prefix = ipam.parse_cidr(net["subnet"])
        for rnet, rprefix, dev in ipam.routes():
            if dev != net["bridge"] and ipam.overlaps((sub, prefix), (rnet, rprefix)):
                raise errors.RuntimeFailure(
                    f"network {net['name']}: its subnet {net['subnet']} is already routed through {dev} "
                    f"({ipam.cidr(rnet, rprefix)}): remove that, or this network (`jupybox network rm`)")
        ports = [ep["veth"] for ep in net["endpoints"].values() if alive(ep)]
        bridge.ensure(net["bridge"], net["gateway"], prefix, net["mac"], alias=ownership.bridge_alias(self.layout),
                      ports=ports)
        self._apply_table(nets)
        return netlink.link_index(net["bridge"])

    def remove_kernel_objects(self) -> dict:
        """Every bridge and the table this store made in this namespace (``system reset``)."""
        from . import bridge

        gone = {"bridges": [], "tables": []}
        with self.lock():
            for net in self.load_all().values():
                if netlink.link_index(net["bridge"]):
                    bridge.delete(net["bridge"])
                    gone["bridges"].append(net["bridge"])
            if _have_nft() and self.table in nat.tables():
                nat.delete_table(self.table)
                gone["tables"].append(self.table)
        return gone

    def _apply_table(self, nets: dict) -> None:
        """Replace the NAT table with what the state says (live endpoints only)."""
        present = [n for n in nets.values() if netlink.link_index(n["bridge"])]
        published = [(p, ep["ip"]) for n in present for ep in n["endpoints"].values() if alive(ep)
                     for p in ep.get("ports", [])]
        from . import ownership

        nat.run(nat.render(self.table, [{"bridge": n["bridge"], "subnet": n["subnet"]} for n in present], published,
                           comment=ownership.table_comment(self.layout)))

    def remove(self, name: str) -> None:
        if name in BUILTIN:
            raise errors.Conflict(f"{name} is a pre-defined network and cannot be removed")
        with self.lock():
            nets = self.load_all()
            net = nets.get(name) or next((n for n in nets.values() if len(name) >= 3 and n["id"].startswith(name)), None)
            if net is None:
                raise errors.NotFound(f"network {name} not found")
            live = [ep["name"] for ep in net["endpoints"].values() if alive(ep)]
            if live:
                raise errors.Conflict(f"error while removing network: network {net['name']} has active endpoints "
                                      f"({', '.join(sorted(live))}): stop or disconnect them first")
            if netlink.link_index(net["bridge"]):
                from . import bridge

                bridge.delete(net["bridge"])
            os.unlink(self.path(net["name"]))
            del nets[net["name"]]
            if _have_nft():
                self._apply_table(nets)
        self.layout.bump_generation()

    @staticmethod
    def _subnets(nets: dict) -> list[tuple[int, int]]:
        return [ipam.parse_cidr(n["subnet"]) for n in nets.values()]

    @staticmethod
    def _new(name: str, sub: tuple[int, int], gateway: int | None, builtin: bool, labels: dict) -> dict:
        nid = os.urandom(32).hex()
        return {
            "name": name, "id": nid, "driver": "bridge", "bridge": "jbx-" + nid[:11], "subnet": ipam.cidr(*sub),
            "gateway": ipam.int2ip(gateway or sub[0] + 1),
            "mac": "02:" + ":".join(f"{b:02x}" for b in os.urandom(5)),
            "builtin": builtin, "created": now_iso(), "labels": dict(labels or {}), "endpoints": {}, "reserved": {},
        }

    # -- views -----------------------------------------------------------------------------------
    def inspect(self, net: dict) -> dict:
        return {
            "Name": net["name"], "Id": net["id"], "Created": net["created"], "Scope": "local", "Driver": "bridge",
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": net["subnet"], "Gateway": net["gateway"]}]},
            "Internal": False, "Attachable": False,
            "Containers": {c: {"Name": ep["name"], "EndpointID": veth_name(c, net["id"]), "MacAddress": ep["mac"],
                               "IPv4Address": f"{ep['ip']}/{net['subnet'].split('/')[1]}", "IPv6Address": ""}
                           for c, ep in net["endpoints"].items() if alive(ep)},
            "Options": {"com.docker.network.bridge.name": net["bridge"]},
            "Labels": net.get("labels", {}),
        }

    # -- garbage ---------------------------------------------------------------------------------
    def prune(self, existing: set[str]) -> dict:
        """Reconcile everything with the live containers: endpoints, reservations, map elements,
        veths on our bridges. ``existing``: ids of the containers that still exist."""
        orphans = collect_orphans(self.layout)
        if not self.dir.exists():
            return {"orphans": orphans} if any(orphans.values()) else {}
        result = {"endpoints": [], "veths": []}
        if any(orphans.values()):
            result["orphans"] = orphans
        with self.lock():
            nets = self.load_all()
            if not nets:
                return {}
            keep = set()
            for net in nets.values():
                changed = False
                for c, ep in list(net["endpoints"].items()):
                    if alive(ep):
                        keep.add(ep["veth"])
                        continue
                    del net["endpoints"][c]
                    result["endpoints"].append(f"{net['name']}:{ep['ip']}")
                    if c in existing:
                        net.setdefault("reserved", {})[c] = ep["ip"]
                    changed = True
                for c in list(net.get("reserved", {})):
                    if c not in existing:
                        del net["reserved"][c]
                        changed = True
                if changed:
                    self.save(net)
            present = {n["bridge"] for n in nets.values() if netlink.link_index(n["bridge"])}
            if present:
                from . import bridge

                stale = [v for v in bridge.ports_of(present) if v not in keep]
                result["veths"] = bridge.delete_links(stale)
                if _have_nft():
                    self._apply_table(nets)
                self._sync_peers(nets, set(nets))
        return result


def collect_orphans(layout) -> dict:
    """The bridges and tables of stores that are gone (see ``ownership``): when a bridge is made,
    and at prune."""
    from . import ownership

    try:
        return ownership.collect(keep_id=layout.store_id())
    except OSError:
        return {}


def _have_nft() -> bool:
    try:
        nat.nft_binary()
        return True
    except errors.RuntimeFailure:
        return False
