"""A container on its networks: an address, its published ports, a veth pair, the hosts files.

:class:`Endpoints` is the half of :class:`~jupybox.network.manager.Networks` that deals with one
container: ``attach`` at its start (under the lock: an address, port reservations and NAT map
elements, the hosts files; then, outside it, the veth pair by netlink), ``detach`` at its exit,
``connect``/``disconnect`` while it lives. The network state it changes is the manager's
(``load_all``, ``save``, ``lock``); the NAT table is rewritten through the manager too.

An endpoint is *live* while its ``owner`` (the container's PID 1: pid and start time) runs;
``alive`` is the one test every cleanup uses.
"""

from __future__ import annotations

import os
import time

from .. import errors
from ..jsonfile import read_json, write_json_atomic
from ..procs import pid_alive, proc_start_time
from . import DEFAULT, etc, ipam, nat, netlink


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


# the attachments of the containers this process monitors: the store's service reports a
# command's exit to its client before it reaps PID 1 and cleans up, and a re-run cell publishing
# the same port must not find it still taken
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


def veth_name(cid: str, network_id: str) -> str:
    """The host end of a container's veth on a network: 'jv' + 8 of the container + 4 of the network."""
    return f"jv{cid[:8]}-{network_id[:4]}"


def _quiet_unplug(veths: list[str], delete: bool = False) -> None:
    try:
        netlink.unplug(veths, delete=delete)
    except OSError:
        pass


class Endpoints:
    """Mixed into :class:`~jupybox.network.manager.Networks` (see the module's docstring)."""

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
