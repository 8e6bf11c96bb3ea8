"""Networks on disk and in the kernel: create, attach a container, detach it, garbage-collect.

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
import re
import time

from .. import errors
from ..runtime.state import now_iso, pid_alive, proc_start_time, read_json, write_json_atomic
from . import etc, ipam, nat, netlink

_DECODER = json.JSONDecoder()
BUILTIN = ("bridge", "host", "none")
DEFAULT = "bridge"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise errors.UsageError(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def alive(ep: dict) -> bool:
    owner = ep.get("owner") or [0, 0]
    return pid_alive(owner[0], owner[1])


class Attachment:
    """What a running container holds: its port reservations (closed when it exits)."""

    def __init__(self, cid: str, owner: list[int], sockets: list):
        self.cid = cid
        self.owner = owner
        self.sockets = sockets
        self.exited = False  # set by its monitor when the command has exited (PID 1 may linger)
        _HELD[cid] = self

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets = []
        if _HELD.get(self.cid) is self:
            del _HELD[self.cid]


# the attachments of the containers this process monitors: the launcher daemon tells the kernel
# a command has exited before it reaps PID 1 and cleans up, and a re-run cell publishing the
# same port must not find it still taken
_HELD: dict[str, Attachment] = {}


def _exiting(cid: str, ep: dict, timeout: float = 1.0) -> bool:
    """True if ``ep`` belongs to a container this process monitors whose PID 1 is ending."""
    if cid not in _HELD:
        return False
    if _HELD[cid].exited:
        return True  # its PID 1 only waits for its monitor (this process) to let it go
    deadline = time.monotonic() + timeout
    while alive(ep):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Networks:
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
        net = self.load(name) if _NAME.match(name or "") else None
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

    # -- containers ----------------------------------------------------------------------------
    def container_networks(self, rec) -> list[dict]:
        """[{"name", "aliases"}], the primary network first."""
        path = rec.dir / "networks.json"
        if os.path.exists(path):  # connect/disconnect changed them
            return read_json(path)["networks"]
        spec = rec.config["spec"]
        if spec["network"] in ("none", "host"):
            return []
        return [{"name": spec["network"], "aliases": list(spec.get("network_aliases") or [])}]

    def attach(self, rec, pid: int, only: str | None = None) -> Attachment:
        """Plug the container whose PID 1 is ``pid`` (its network namespace) into its networks.

        ``only``: one network (``network connect`` of a running container), no ports."""
        cfg = rec.config
        spec = cfg["spec"]
        cid = rec.id
        owner = [pid, proc_start_time(pid)]
        wanted = self.container_networks(rec)
        if only is not None:
            wanted = [w for w in wanted if w["name"] == only]
        sockets: list = []
        plugs = []
        try:
            with self.lock():
                nets = self.load_all()
                for w in wanted:
                    if w["name"] not in nets:
                        if w["name"] != DEFAULT:
                            raise errors.NotFound(f"network {w['name']} not found")
                        nets[DEFAULT] = self._new(DEFAULT, ipam.pick_subnet(self._subnets(nets)), None, True, {})
                        self.save(nets[DEFAULT])
                stale_ports, stale_veths, changed = self._collect_dead(nets)
                taken = {ep["ifname"] for n in nets.values() for c, ep in n["endpoints"].items() if c == cid}
                new_ports: list[tuple[dict, str]] = []
                for i, w in enumerate(wanted):
                    net = nets[w["name"]]
                    if cid in net["endpoints"]:
                        raise errors.Conflict(f"container {rec.name} is already connected to network {net['name']}")
                    index = self._ensure_kernel(net, nets)
                    sub, prefix = ipam.parse_cidr(net["subnet"])
                    used = {ipam.ip2int(ep["ip"]) for ep in net["endpoints"].values()}
                    reserved = net.setdefault("reserved", {})
                    avoid = {ipam.ip2int(ip) for c, ip in reserved.items() if c != cid}
                    prefer = ipam.ip2int(reserved[cid]) if cid in reserved else 0
                    ip = ipam.int2ip(ipam.allocate(sub, prefix, ipam.ip2int(net["gateway"]), used, prefer, avoid))
                    ifname = next(f"eth{k}" for k in range(64) if f"eth{k}" not in taken)
                    taken.add(ifname)
                    ep = {
                        "name": rec.name, "hostname": cfg.get("hostname") or cid[:12], "ip": ip,
                        "mac": ":".join(f"{b:02x}" for b in netlink.mac_for(ip)),
                        "veth": veth_name(cid, net["id"]), "ifname": ifname,
                        "aliases": list(w.get("aliases") or []), "extra_hosts": list(spec.get("add_hosts") or []),
                        "ports": [], "owner": owner, "primary": only is None and i == 0,
                    }
                    if ep["primary"] and cfg.get("ports"):
                        from . import ports as portlib

                        for port in cfg["ports"]:
                            port = dict(port)
                            if port["host_port"]:
                                for o in nets.values():
                                    for oc, oep in list(o["endpoints"].items()):
                                        if not any(portlib.clash(port, op) for op in oep.get("ports", [])):
                                            continue
                                        if not _exiting(oc, oep):
                                            raise errors.Conflict(
                                                f"Bind for {port['host_ip'] or '0.0.0.0'}:{port['host_port']} failed: "
                                                f"port is already allocated (by container {oep['name']})")
                                        # an exited container of ours that is not cleaned up yet
                                        del o["endpoints"][oc]
                                        stale_ports += [(q, oep["ip"]) for q in oep.get("ports", [])]
                                        stale_veths.append(oep["veth"])
                                        changed.add(o["name"])
                                        _HELD[oc].close()
                            sockets.append(portlib.reserve(port))
                            ep["ports"].append(port)
                            new_ports.append((port, ip))
                    net["endpoints"][cid] = ep
                    reserved.pop(cid, None)
                    changed.add(net["name"])
                    plugs.append((net, ep, index))
                for name in changed:
                    self.save(nets[name])
                if new_ports or stale_ports:
                    self._ports(nets, new_ports, stale_ports)
                if stale_veths:
                    _quiet_unplug(stale_veths)
                self._write_etc(rec, nets, plugs, changed)
            for net, ep, index in plugs:
                netlink.plug(pid, ep["veth"], ep["ifname"], index, ep["ip"], int(net["subnet"].split("/")[1]),
                             net["gateway"] if ep["primary"] else None, netlink.mac_for(ep["ip"]))
        except BaseException as e:
            for s in sockets:
                s.close()
            if plugs:
                try:
                    self.detach(cid, owner, only=only)
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
            if isinstance(e, OSError):
                what = e.strerror or str(e)
                if e.filename:
                    what += f": {e.filename}"
                raise errors.RuntimeFailure(f"connecting the container to its network: {what}") from None
            raise
        return Attachment(cid, owner, sockets)

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

    def _collect_dead(self, nets: dict) -> tuple[list, list, set]:
        """Drop the endpoints of dead containers (lock held): -> their map elements, veths, networks."""
        ports_gone, veths, changed = [], [], set()
        for net in nets.values():
            for c, ep in list(net["endpoints"].items()):
                if not alive(ep):
                    del net["endpoints"][c]
                    if c in _HELD:  # ours, exited, not cleaned up yet: its ports are free
                        _HELD[c].close()
                    ports_gone += [(p, ep["ip"]) for p in ep.get("ports", [])]
                    veths.append(ep["veth"])
                    if (self.layout.containers / c).exists():
                        net.setdefault("reserved", {})[c] = ep["ip"]
                    changed.add(net["name"])
        return ports_gone, veths, changed

    def _ports(self, nets: dict, add: list, delete: list) -> None:
        try:
            nat.add_ports(self.table, add, delete)
        except errors.RuntimeFailure:
            self._apply_table(nets)  # a stale element was gone, or the table: write it whole

    def _write_etc(self, rec, nets: dict, plugs: list, changed: set) -> None:
        """This container's hosts and resolv.conf; its peers' hosts on the user networks that changed."""
        spec = rec.config["spec"]
        own = next((ep for _n, ep, _i in plugs if ep["primary"]), None)
        etc.write_in_place(rec.dir / "hosts", self.hosts_for(rec.id, nets, rec.config.get("hostname") or rec.id[:12],
                                                             list(spec.get("add_hosts") or []), own))
        if own is not None:
            etc.write_in_place(rec.dir / "resolv.conf", etc.render_resolv(list(spec.get("dns") or [])))
        self._sync_peers(nets, changed, skip=rec.id)

    def hosts_for(self, cid: str, nets: dict, hostname: str, extra: list[str], own: dict | None = None) -> str:
        peers = []
        own_ip = None
        for net in nets.values():
            ep = net["endpoints"].get(cid)
            if ep is None:
                continue
            if ep.get("primary"):
                own_ip = ep["ip"]
            if net.get("builtin"):
                peers.append((ep["ip"], [hostname]))
                continue
            for c, other in sorted(net["endpoints"].items(), key=lambda kv: kv[1]["ip"]):
                if c == cid or alive(other):
                    peers.append((other["ip"], [other["name"], *other.get("aliases", []), c[:12]]))
        if own is not None:
            own_ip = own["ip"]
        return etc.render_hosts(hostname, own_ip, peers, extra)

    def _sync_peers(self, nets: dict, names: set[str], skip: str | None = None) -> None:
        """Rewrite the hosts file of every live container on these user networks."""
        cids = {c for n in names if n in nets and not nets[n].get("builtin")
                for c, ep in nets[n]["endpoints"].items() if c != skip and alive(ep)}
        for c in cids:
            ep = next(n["endpoints"][c] for n in nets.values() if c in n["endpoints"])
            etc.write_in_place(self.layout.containers / c / "hosts",
                               self.hosts_for(c, nets, ep.get("hostname") or c[:12], ep.get("extra_hosts", [])))

    def detach(self, cid: str, owner: list[int] | None = None, only: str | None = None, forget: bool = False) -> bool:
        """Take the container off its networks: endpoints, map elements, veths, peers' hosts.

        ``owner``: only endpoints made for that PID 1 (a newer start keeps its own); None: only
        endpoints whose owner is dead. ``forget``: also drop the address kept for a restart."""
        if not self.dir.exists():
            return False
        with self.lock():
            nets = self.load_all()
            ports_gone, veths, touched = [], [], set()
            for net in nets.values():
                if only is not None and net["name"] != only:
                    continue
                ep = net["endpoints"].get(cid)
                if ep is not None and (ep.get("owner") == owner if owner is not None else not alive(ep)):
                    del net["endpoints"][cid]
                    ports_gone += [(p, ep["ip"]) for p in ep.get("ports", [])]
                    veths.append(ep["veth"])
                    if not forget:
                        net.setdefault("reserved", {})[cid] = ep["ip"]
                    touched.add(net["name"])
                if forget and cid in net.get("reserved", {}):
                    del net["reserved"][cid]
                    touched.add(net["name"])
            for name in touched:
                self.save(nets[name])
            if ports_gone:
                self._ports(nets, [], ports_gone)
            if touched:
                self._sync_peers(nets, touched, skip=cid)
        # a disconnect (the namespace lives on) deletes the pair; after an exit, down is enough
        _quiet_unplug(veths, delete=only is not None)
        return bool(touched)

    # -- connect / disconnect --------------------------------------------------------------------
    def connect(self, engine, rec, name: str, aliases: list[str]) -> None:
        spec = rec.config["spec"]
        if spec["network"] in ("none", "host"):
            raise errors.Conflict(f"container {rec.name} uses the {spec['network']} network: it cannot be connected to others")
        net = self.get(name)
        if aliases and net.get("builtin"):
            raise errors.UsageError("network-scoped aliases are only supported for user-defined networks")
        current = self.container_networks(rec)
        if any(w["name"] == net["name"] for w in current):
            raise errors.Conflict(f"container {rec.name} is already connected to network {net['name']}")
        current.append({"name": net["name"], "aliases": list(aliases)})
        write_json_atomic(rec.dir / "networks.json", {"networks": current})
        state = engine.reconcile(rec)
        if state.status.value == "running":
            try:
                self.attach(rec, state.pid, only=net["name"])
            except BaseException:
                write_json_atomic(rec.dir / "networks.json", {"networks": [w for w in current if w["name"] != net["name"]]})
                raise

    def disconnect(self, engine, rec, name: str, force: bool = False) -> None:
        current = self.container_networks(rec)
        net = self.load(name)
        netname = net["name"] if net else name
        if not any(w["name"] == netname for w in current):
            if not force:
                raise errors.NotFound(f"container {rec.name} is not connected to network {name}")
        write_json_atomic(rec.dir / "networks.json", {"networks": [w for w in current if w["name"] != netname]})
        state = engine.reconcile(rec)
        if state.status.value == "running":
            self.detach(rec.id, [state.pid, state.pid_start], only=netname, forget=True)

    # -- views -----------------------------------------------------------------------------------
    def endpoints_of(self, cid: str) -> dict[str, tuple[dict, dict]]:
        """network name -> (network, live endpoint) for one container (no lock: a read)."""
        return {n["name"]: (n, n["endpoints"][cid]) for n in self.load_all().values()
                if cid in n["endpoints"] and alive(n["endpoints"][cid])}

    def ports_by_container(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for n in self.load_all().values():
            for c, ep in n["endpoints"].items():
                if ep.get("ports") and alive(ep):
                    out.setdefault(c, []).extend(ep["ports"])
        return out

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


def veth_name(cid: str, network_id: str) -> str:
    """The host end of a container's veth on a network: 'jv' + 8 of the container + 4 of the network."""
    return f"jv{cid[:8]}-{network_id[:4]}"


def _quiet_unplug(veths: list[str], delete: bool = False) -> None:
    try:
        netlink.unplug(veths, delete=delete)
    except OSError:
        pass


def _have_nft() -> bool:
    try:
        nat.nft_binary()
        return True
    except errors.RuntimeFailure:
        return False
