"""rtnetlink, spoken directly: the requests that plug a container into a bridge (the launch path)
and the few that make, list and delete bridges and stale links (``bridge.py``).

Hand-encoded with ``struct`` on a plain ``AF_NETLINK`` socket rather than through pyroute2: on the
launch path importing pyroute2 costs 60-130 ms (its package ``__init__`` pulls in asyncio, ssl
and every netlink family) and each request ~1 ms (an asyncio loop turn per call), against a 5 ms
budget for the whole bridge attach (here ~0.7 ms for the veth, ~0.25 ms for address, link and
route); and the store's service, which lives as long as any container runs, would carry its
~25 MB of modules for the few bridge requests of a network's life. What is needed is twelve
message kinds, below.

The container end is configured through a netlink socket opened *inside* its network namespace:
this thread joins the namespace with setns(2) just long enough to create the socket (a socket
stays bound to the namespace it was made in) and comes back at once.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from ..linux import syscalls as sc

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_PID = 19
IFLA_IFALIAS = 20
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4

RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

IFF_UP = 0x1

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, pad, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTA = struct.Struct("=HH")  # rtattr: len, type
MAX_DUMP = 64 << 20  # a dump larger than this is refused (a namespace with ~100,000 links)


def _attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * (-n % 4)


def _str(s: str) -> bytes:
    return s.encode() + b"\0"


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def _attrs(data: bytes, off: int) -> dict[int, bytes]:
    """The rtattrs from ``off`` to the end of ``data`` (one message's payload): type -> value (the
    last of a repeated type; nested attributes stay packed)."""
    out = {}
    while off + _RTA.size <= len(data):
        length, kind = _RTA.unpack_from(data, off)
        if length < _RTA.size or off + length > len(data):
            break
        out[kind & 0x3FFF] = data[off + _RTA.size:off + length]  # without NLA_F_NESTED/NET_BYTEORDER
        off += (length + 3) & ~3
    return out


def _messages(data: bytes):
    """(type, seq, payload) of each whole netlink message in one datagram from the kernel; a
    truncated or lying header ends the walk."""
    off = 0
    while off + _HDR.size <= len(data):
        length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > len(data):
            return
        yield mtype, mseq, data[off + _HDR.size:off + length]
        off += (length + 3) & ~3


def _raise_if_error(payload: bytes, what: str) -> None:
    """An NLMSG_ERROR's payload: its negative errno as OSError (0 is an acknowledgement)."""
    (err,) = struct.unpack_from("=i", payload)
    if err:
        raise OSError(-err, f"{what}: {os.strerror(-err)}")


def _cstr(value: bytes | None) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace") if value else ""


def parse_mac(mac: str) -> bytes:
    """``02:42:ac:11:00:01`` -> 6 bytes; ValueError for anything else."""
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


class Rtnl:
    """One NETLINK_ROUTE socket: requests with an acknowledgement, errors as OSError."""

    def __init__(self, sock: socket.socket | None = None):
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self._seq = 0

    @classmethod
    def in_netns(cls, path: str) -> "Rtnl":
        """A socket in the network namespace at ``path`` (``/proc/<pid>/ns/net``)."""
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(target, sc.CLONE_NEWNET)
                try:
                    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
                finally:
                    sc.setns(home, sc.CLONE_NEWNET)
            finally:
                os.close(home)
        finally:
            os.close(target)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        self.batch([(kind, flags, body, what)])

    def batch(self, requests: list[tuple[int, int, bytes, str]]) -> None:
        """Several requests in one sendmsg: the kernel runs and acknowledges each in order; the
        first error is raised (after it the socket may hold unread acknowledgements)."""
        msgs, pending = [], {}
        for kind, flags, body, what in requests:
            self._seq += 1
            pending[self._seq] = what
            msgs.append(_HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, self._seq, 0) + body)
        self.sock.send(b"".join(msgs))
        while pending:
            for mtype, mseq, payload in _messages(self.sock.recv(65536)):
                if mtype == NLMSG_ERROR and mseq in pending:
                    _raise_if_error(payload, pending.pop(mseq))

    def dump(self, kind: int, body: bytes, what: str) -> list[bytes]:
        """The payloads of every message a dump request answers with (a multi-part reply, read to
        its NLMSG_DONE); OSError for an error reply or a dump over MAX_DUMP bytes."""
        self._seq += 1
        seq = self._seq
        self.sock.send(_HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        out, total = [], 0
        while True:
            data = self.sock.recv(1 << 16)  # the kernel's dump chunks are at most a page or 32 KiB
            total += len(data)
            if total > MAX_DUMP:
                raise OSError(errno.EMSGSIZE, f"{what}: the kernel's answer is over {MAX_DUMP >> 20} MiB")
            for mtype, mseq, payload in _messages(data):
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    _raise_if_error(payload, what)
                else:
                    out.append(payload)

    # -- links ---------------------------------------------------------------------------------
    def links(self) -> list[dict]:
        """Every link of the namespace: ``{"index", "name", "master", "alias"}`` (0 / "" if none)."""
        out = []
        for msg in self.dump(RTM_GETLINK, _ifinfo(), "listing links"):
            if len(msg) < _IFINFO.size:
                continue
            index = _IFINFO.unpack_from(msg)[2]
            a = _attrs(msg, _IFINFO.size)
            master = a.get(IFLA_MASTER)
            out.append({"index": index, "name": _cstr(a.get(IFLA_IFNAME)), "alias": _cstr(a.get(IFLA_IFALIAS)),
                        "master": struct.unpack("=I", master[:4])[0] if master and len(master) >= 4 else 0})
        return out

    def ipv4_addresses(self, index: int) -> set[str]:
        """The IPv4 addresses of link ``index``."""
        found = set()
        body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
        for msg in self.dump(RTM_GETADDR, body, f"listing the addresses of link {index}"):
            if len(msg) < _IFADDR.size or _IFADDR.unpack_from(msg)[4] != index:
                continue
            addr = _attrs(msg, _IFADDR.size).get(IFA_ADDRESS)
            if addr and len(addr) == 4:
                found.add(socket.inet_ntoa(addr))
        return found

    def add_bridge(self, name: str, mac: bytes) -> None:
        info = _attr(IFLA_INFO_KIND, _str("bridge"))
        body = _ifinfo() + _attr(IFLA_IFNAME, _str(name)) + _attr(IFLA_ADDRESS, mac) + _attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"creating bridge {name}")

    def set_alias(self, index: int, alias: str) -> None:
        self.request(RTM_NEWLINK, 0, _ifinfo(index) + _attr(IFLA_IFALIAS, alias.encode()),
                     f"setting the alias of link {index}")

    def set_master(self, index: int, master: int) -> None:
        self.request(RTM_NEWLINK, 0, _ifinfo(index) + _attr(IFLA_MASTER, struct.pack("=I", master)),
                     f"putting link {index} on bridge {master}")

    def add_veth(self, name: str, peer: str, *, netns_pid: int = 0, netns_fd: int = -1, master: int = 0,
                 peer_mac: bytes | None = None) -> None:
        """A veth pair: ``name`` here (up, enslaved to ``master``), ``peer`` in the target namespace."""
        peer_body = _ifinfo() + _attr(IFLA_IFNAME, _str(peer))
        if peer_mac:
            peer_body += _attr(IFLA_ADDRESS, peer_mac)
        if netns_fd >= 0:
            peer_body += _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
        elif netns_pid:
            peer_body += _attr(IFLA_NET_NS_PID, struct.pack("=I", netns_pid))
        info = _attr(IFLA_INFO_KIND, _str("veth")) + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_body))
        body = _ifinfo(0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, _str(name)) + _attr(IFLA_LINKINFO, info)
        if master:
            body += _attr(IFLA_MASTER, struct.pack("=I", master))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"creating veth {name}")

    def set_up(self, index: int) -> None:
        self.request(*_up_msg(index))

    def set_down(self, name: str) -> None:
        """Down and detached from the bridge: a dying namespace's veth that forwards nothing more."""
        body = _ifinfo(0, 0, IFF_UP) + _attr(IFLA_IFNAME, _str(name)) + _attr(IFLA_MASTER, struct.pack("=I", 0))
        self.request(RTM_NEWLINK, 0, body, f"setting {name} down")

    def delete(self, name: str) -> bool:
        """Delete a link by name; False if there was none."""
        try:
            self.request(RTM_DELLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, _str(name)), f"deleting {name}")
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # -- addresses and routes ------------------------------------------------------------------
    def add_addr(self, index: int, addr: bytes, prefixlen: int, broadcast: bytes | None = None) -> None:
        self.request(*_addr_msg(index, addr, prefixlen, broadcast))

    def add_default_route(self, gateway: bytes) -> None:
        self.request(*_route_msg(gateway))


def _up_msg(index: int) -> tuple:
    return RTM_NEWLINK, 0, _ifinfo(index, IFF_UP, IFF_UP), f"bringing up link {index}"


def _addr_msg(index: int, addr: bytes, prefixlen: int, broadcast: bytes | None) -> tuple:
    body = struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += _attr(IFA_LOCAL, addr) + _attr(IFA_ADDRESS, addr)
    if broadcast:
        body += _attr(IFA_BROADCAST, broadcast)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"adding address {socket.inet_ntoa(addr)}"


def _route_msg(gateway: bytes) -> tuple:
    # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                       RTN_UNICAST, 0)
    body += _attr(RTA_GATEWAY, gateway)
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"adding default route via {socket.inet_ntoa(gateway)}"


def plug(pid: int, veth: str, ifname: str, master: int, ip: str, prefixlen: int, gateway: str | None,
         mac: bytes, host: Rtnl | None = None) -> None:
    """Connect the network namespace of process ``pid`` to the bridge with index ``master``.

    Makes the veth pair (``veth`` on the bridge, ``ifname`` inside), gives ``ifname`` its address
    and, when ``gateway`` is set, the default route. On failure the pair is deleted."""
    own = host is None
    host = host or Rtnl()
    try:
        host.add_veth(veth, ifname, netns_pid=pid, master=master, peer_mac=mac)
        try:
            with Rtnl.in_netns(f"/proc/{pid}/ns/net") as inner:
                index = _index_in(inner, ifname)
                addr = socket.inet_aton(ip)
                bcast = struct.pack("!I", struct.unpack("!I", addr)[0] | ((1 << (32 - prefixlen)) - 1))
                msgs = [_addr_msg(index, addr, prefixlen, bcast), _up_msg(index)]
                if gateway:
                    msgs.append(_route_msg(socket.inet_aton(gateway)))
                inner.batch(msgs)
        except BaseException:
            try:
                host.delete(veth)
            except OSError:
                pass
            raise
    finally:
        if own:
            host.close()


def _index_in(inner: Rtnl, ifname: str) -> int:
    """The index of ``ifname`` in the namespace of ``inner`` (an ioctl on a socket made there)."""
    import fcntl

    # SIOCGIFINDEX needs a socket of that namespace: the netlink socket itself will do
    ifreq = struct.pack("16si12x", ifname.encode(), 0)
    return struct.unpack("16si12x", fcntl.ioctl(inner.sock.fileno(), 0x8933, ifreq))[1]


def unplug(veths: list[str], delete: bool = False) -> None:
    """Take host-side veths off their bridge (``delete``: remove them; ~20 ms each, synchronize_net).

    Setting one down is ~0.1 ms and enough: the pair disappears with the container's namespace."""
    if not veths:
        return
    with Rtnl() as host:
        for name in veths:
            try:
                if delete:
                    host.delete(name)
                else:
                    host.set_down(name)
            except OSError as e:
                if e.errno not in (errno.ENODEV, errno.ENOENT):
                    raise


def mac_for(ip: str) -> bytes:
    """docker's MAC for an address, 02:42 + the IPv4 bytes: a reused address keeps its MAC, so no
    neighbour cache on the bridge holds a stale entry."""
    return b"\x02\x42" + socket.inet_aton(ip)


def link_index(name: str) -> int:
    """The index of a link in this namespace, 0 if there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0
