"""NAT and published ports with nftables: one table per jupybox root, owned by it alone.

Why nftables rather than iptables: one table of our own (``ip jupybox_<hash>``) holds every rule
jupybox makes, so it never edits or reorders a chain that docker, firewalld or the administrator
own, and cleanup is deleting that table; a whole table is replaced in one atomic transaction
(``nft -f``: all of it or nothing), so what ``prune`` writes is a pure function of the state on
disk; and published ports are elements of two maps consulted by one fixed rule, so publishing a
port is adding a map element (~2 ms, no rule list to search or reorder, no rule handles to track).
Debian's iptables is iptables-nft anyway, a translation layer over the same kernel API.

The table::

    pub_addr  map  daddr . proto . port  ->  container address . port   (-p 127.0.0.1:8080:80)
    pub_any   map          proto . port  ->  container address . port   (-p 8080:80)
    prerouting/output (nat)  to a local address: dnat through the maps
    postrouting (nat)        a network's subnet leaving by another interface: masquerade;
                             127.0.0.0/8 or DNATed same-subnet traffic entering a bridge: masquerade
                             (with route_localnet on the bridge, -p 127.0.0.1:... works locally)
    guard (raw prerouting)   packets from a bridge to 127.0.0.0/8 are dropped: route_localnet must
                             not let containers reach the host's loopback services (CVE-2020-8558)
"""

from __future__ import annotations

import os

from .. import errors


def table_name(root) -> str:
    """``jupybox_`` + a 32-bit FNV-1a hash of the root's path (no hashlib import on this path)."""
    h = 0x811C9DC5
    for b in os.path.realpath(str(root)).encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"jupybox_{h:08x}"


def nft_binary() -> str:
    import shutil

    path = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)
    if path is None:
        raise errors.RuntimeFailure("nft is not installed: bridge networks need nftables (apt-get install nftables)")
    return path


def run(script: str) -> None:
    """Apply an nft script as one transaction; a failure is a one-line RuntimeFailure."""
    import subprocess

    try:
        proc = subprocess.run([nft_binary(), "-f", "-"], input=script, capture_output=True, text=True)
    except OSError as e:
        raise errors.RuntimeFailure(f"running nft: {e.strerror}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        msg = next((ln for ln in lines if "Error" in ln), lines[0] if lines else f"exit status {proc.returncode}")
        raise errors.RuntimeFailure(f"nftables: {msg}")


def _element(port: dict, ip: str) -> tuple[str, str, str]:
    """(map, key, value) for one published port of the container at ``ip``."""
    proto, hport = port["protocol"], port["host_port"]
    value = f"{ip} . {port['container_port']}"
    if port["host_ip"]:
        return "pub_addr", f"{port['host_ip']} . {proto} . {hport}", value
    return "pub_any", f"{proto} . {hport}", value


def render(table: str, networks: list[dict], published: list[tuple[dict, str]], comment: str = "") -> str:
    """The whole table for these networks (``bridge``, ``subnet``) and published ports; ``comment``
    names its owner (see ``ownership``)."""
    head = f"table ip {table} {{}}\ndelete table ip {table}\n"
    if not networks:
        return head
    maps: dict[str, list[str]] = {"pub_addr": [], "pub_any": []}
    for port, ip in published:
        name, k, v = _element(port, ip)
        maps[name].append(f"{k} : {v}")
    types = {"pub_addr": "ipv4_addr . inet_proto . inet_service", "pub_any": "inet_proto . inet_service"}
    out = [head + f"table ip {table} {{"]
    if comment:
        out.append(f'  comment "{_quote(comment)}"')
    for name, elems in maps.items():
        out.append(f"  map {name} {{ type {types[name]} : ipv4_addr . inet_service;")
        if elems:
            out.append("    elements = { " + ", ".join(elems) + " }")
        out.append("  }")
    out.append("  chain prerouting { type nat hook prerouting priority dstnat; policy accept;"
               " fib daddr type local jump published; }")
    out.append("  chain output { type nat hook output priority -100; policy accept;"
               " fib daddr type local jump published; }")
    out.append("  chain published {")
    out.append("    dnat ip to ip daddr . meta l4proto . th dport map @pub_addr")
    out.append("    dnat ip to meta l4proto . th dport map @pub_any")
    out.append("  }")
    out.append("  chain postrouting { type nat hook postrouting priority srcnat; policy accept;")
    for net in networks:
        br, sub = net["bridge"], net["subnet"]
        out.append(f'    ip saddr {sub} oifname != "{br}" masquerade')
        out.append(f'    oifname "{br}" ip saddr 127.0.0.0/8 masquerade')
        out.append(f'    oifname "{br}" ip saddr {sub} ct status dnat masquerade')
    out.append("  }")
    bridges = ", ".join(f'"{n["bridge"]}"' for n in networks)
    out.append("  chain guard { type filter hook prerouting priority raw; policy accept;")
    out.append(f"    iifname {{ {bridges} }} ip daddr 127.0.0.0/8 drop")
    out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return text.replace("\\", "/").replace('"', "'")[:127]


def tables() -> list[str]:
    """The names of the jupybox tables of this network namespace."""
    import subprocess

    try:
        out = subprocess.run([nft_binary(), "list", "tables", "ip"], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [line.split()[-1] for line in out.splitlines() if line.startswith("table ip jupybox_")]


def table_comment(table: str) -> str | None:
    import re
    import subprocess

    try:
        out = subprocess.run([nft_binary(), "list", "table", "ip", table], capture_output=True, text=True).stdout
    except OSError:
        return None
    m = re.search(r'^\s*comment "([^"]*)"', out, re.M)
    return m.group(1) if m else None


def delete_table(table: str) -> None:
    run(f"table ip {table} {{}}\ndelete table ip {table}\n")


def add_ports(table: str, published: list[tuple[dict, str]], stale: list[tuple[dict, str]] = ()) -> None:
    """Add map elements (and delete ``stale`` ones first) in one transaction."""
    lines = []
    for port, ip in stale:
        name, k, _v = _element(port, ip)
        lines.append(f"delete element ip {table} {name} {{ {k} }}")
    for port, ip in published:
        name, k, v = _element(port, ip)
        lines.append(f"add element ip {table} {name} {{ {k} : {v} }}")
    if lines:
        run("\n".join(lines) + "\n")


def delete_ports(table: str, published: list[tuple[dict, str]]) -> None:
    if not published:
        return
    run("".join(f"delete element ip {table} {m} {{ {k} }}\n" for m, k, _v in (_element(p, ip) for p, ip in published)))
