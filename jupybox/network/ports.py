"""Published ports: docker's ``-p`` syntax, the reservation of host ports, their display.

A published port is plain data, ``{"host_ip", "host_port", "container_port", "protocol"}``
(``host_ip`` "" is every address, ``host_port`` 0 is "pick one"). While the container runs, its
monitor holds a socket bound to each host port (without SO_REUSEADDR): no other jupybox container
and no host process can take the port, a conflict is a clear one-line error, and the reservation
ends with the monitor, whatever kills it. Traffic itself never touches these sockets: nftables
DNATs it to the container (``nat.py``).
"""

from __future__ import annotations

import errno
import socket

from .. import errors

PROTOCOLS = ("tcp", "udp")


def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise errors.UsageError(f"invalid {what} {text!r} in port specification {spec!r}")
    return int(text)


def _range(text: str, what: str, spec: str) -> list[int]:
    lo, sep, hi = text.partition("-")
    if not sep:
        return [_port(text, what, spec)]
    a, b = _port(lo, what, spec), _port(hi, what, spec)
    if b < a:
        raise errors.UsageError(f"invalid port range {text!r} in port specification {spec!r}")
    return list(range(a, b + 1))


def parse_publish(spec: str) -> list[dict]:
    """``[HOSTIP:][HOSTPORT:]CTRPORT[/PROTO]``, ports or ranges: -> port dicts."""
    text = spec.strip()
    proto = "tcp"
    if "/" in text:
        text, _, proto = text.rpartition("/")
        proto = proto.lower()
        if proto not in PROTOCOLS:
            raise errors.UsageError(f"invalid protocol {proto!r} in port specification {spec!r}: tcp or udp")
    if text.startswith("["):
        raise errors.UsageError(f"invalid port specification {spec!r}: IPv6 host addresses are not supported")
    parts = text.split(":")
    if len(parts) == 1:
        host_ip, host, ctr = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, host, ctr = "", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host, ctr = parts
    else:
        raise errors.UsageError(f"invalid port specification {spec!r}")
    if host_ip:
        try:
            socket.inet_aton(host_ip)
            if host_ip.count(".") != 3:
                raise OSError
        except OSError:
            raise errors.UsageError(f"invalid host address {host_ip!r} in port specification {spec!r}") from None
        if host_ip == "0.0.0.0":
            host_ip = ""
    ctr_ports = _range(ctr, "container port", spec) if ctr else []
    if not ctr_ports:
        raise errors.UsageError(f"no container port in port specification {spec!r}")
    host_ports = _range(host, "host port", spec) if host else [0] * len(ctr_ports)
    if len(host_ports) != len(ctr_ports):
        raise errors.UsageError(f"port ranges of different lengths in {spec!r}")
    return [{"host_ip": host_ip, "host_port": h, "container_port": c, "protocol": proto}
            for h, c in zip(host_ports, ctr_ports)]


def normalize(items) -> list[dict]:
    """-p strings, port dicts, or docker-py's ``{"80/tcp": 8080 | ("127.0.0.1", 8080) | None}``."""
    if not items:
        return []
    out: list[dict] = []
    if isinstance(items, dict):
        for key, value in items.items():
            ctr, _, proto = str(key).partition("/")
            ctr_port = f"{ctr}/{proto or 'tcp'}"
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v is None:
                    out += parse_publish(ctr_port)
                elif isinstance(v, tuple):
                    out += parse_publish(f"{v[0]}:{v[1] if len(v) > 1 else ''}:{ctr_port}")
                else:
                    out += parse_publish(f"{v}:{ctr_port}")
        return out
    if isinstance(items, str):
        items = [items]
    for item in items:
        if isinstance(item, dict):
            out.append({"host_ip": item.get("host_ip", "") or "", "host_port": int(item.get("host_port") or 0),
                        "container_port": int(item["container_port"]), "protocol": item.get("protocol", "tcp")})
        else:
            out += parse_publish(str(item))
    return out


def exposed(image_config: dict) -> list[dict]:
    """The image's ExposedPorts ({"80/tcp": {}}) as ports published on a host port the kernel picks."""
    out = []
    for key in sorted((image_config or {}).get("ExposedPorts") or {}):
        try:
            out += parse_publish(key)
        except errors.UsageError:
            continue
    return out


def merge_publish_all(ports: list[dict], image_config: dict) -> list[dict]:
    """-P: every exposed port not already published explicitly."""
    have = {(p["container_port"], p["protocol"]) for p in ports}
    return list(ports) + [p for p in exposed(image_config) if (p["container_port"], p["protocol"]) not in have]


def reserve(port: dict) -> socket.socket:
    """Bind the host port (port 0: the kernel picks a free one, written back into ``port``)."""
    kind = socket.SOCK_STREAM if port["protocol"] == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
    addr = port["host_ip"] or "0.0.0.0"
    try:
        sock.bind((addr, port["host_port"]))
    except OSError as e:
        sock.close()
        where = f"{addr}:{port['host_port']}" if port["host_port"] else f"{addr} ({port['protocol']})"
        if e.errno == errno.EADDRINUSE:
            raise errors.Conflict(f"Bind for {where} failed: port is already allocated") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise errors.UsageError(f"Bind for {where} failed: {addr} is not an address of this host") from None
        raise errors.RuntimeFailure(f"Bind for {where} failed: {e.strerror}") from None
    port["host_port"] = sock.getsockname()[1]
    return sock


def clash(a: dict, b: dict) -> bool:
    """Two publications that cannot coexist: same port and protocol, same or wildcard address."""
    if a["host_port"] != b["host_port"] or a["protocol"] != b["protocol"]:
        return False
    return not a["host_ip"] or not b["host_ip"] or a["host_ip"] == b["host_ip"]


def describe(port: dict) -> str:
    """docker ps' form: 0.0.0.0:8080->80/tcp."""
    return f"{port['host_ip'] or '0.0.0.0'}:{port['host_port']}->{port['container_port']}/{port['protocol']}"
