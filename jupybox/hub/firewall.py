"""What a user's server may reach: the hub's API on the host, nothing else of the host, no other server.

All servers of one hub share one bridge network (``JupyboxSpawner.network_name``), and two
nftables tables of the spawner's own, named after the store and the network, say what that
network may do (jupybox's NAT table is left alone: it belongs to the store)::

    table bridge jupyboxhub_<hash>     frames between two ports of the bridge: dropped
        a frame from or to a server's MAC (02:42 + its IPv4 address, as jupybox assigns them),
        or to a server's IPv4 address whatever its MACs say (a forged frame: servers keep
        docker's NET_RAW capability)
    table inet jupyboxhub_<hash>
        input    from the bridge to the host: replies, ICMP, and TCP to the hub's port (and any
                 ``reachable_host_ports``) on the gateway address; everything else is dropped:
                 the hub's database, the proxy's API, every other service of the host
        forward  from the bridge back into the bridge (a server reaching another through the
                 host's routing) and to anything the host publishes by DNAT: dropped

So a server reaches another user's server only through the proxy, which asks the hub who may
pass. The bridge family is used because bridged frames never reach the inet hooks without
br_netfilter; the rules match MAC and IP prefixes because this kernel family cannot match the
bridge's name (``meta ibrname`` needs CONFIG_NFT_BRIDGE_META). Traffic to the outside world is
forwarded (``pip install`` works); servers elsewhere on the network answer a container as they
answer any machine of that network.

Tables are replaced whole in one ``nft -f`` transaction (as jupybox's NAT table is), and carry a
comment naming the store and the network: :func:`remove` deletes a table only when its comment
proves it is the spawner's.
"""

from __future__ import annotations

import os
import subprocess

from ..network import nat

FAMILIES = ("bridge", "inet")


def table_name(root, network: str) -> str:
    """``jupyboxhub_`` + a 32-bit FNV-1a hash of the store's path and the network's name."""
    h = 0x811C9DC5
    for b in (os.path.realpath(str(root)) + "\0" + network).encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"jupyboxhub_{h:08x}"


def owner(root, network: str) -> str:
    return f"jupybox hub spawner: store {os.path.realpath(str(root))}, network {network}"


def _mac_prefix(subnet: str) -> tuple[str, str]:
    """(value, mask) matching the MACs jupybox gives addresses of ``subnet`` (02:42 + the IPv4)."""
    from ..network import ipam

    net, prefix = ipam.parse_cidr(subnet)
    mask = ipam.mask(prefix)
    value = b"\x02\x42" + net.to_bytes(4, "big")
    bits = b"\xff\xff" + mask.to_bytes(4, "big")
    return ":".join(f"{b:02x}" for b in value), ":".join(f"{b:02x}" for b in bits)


def render(table: str, comment: str, bridge: str, subnet: str, gateway: str, ports: list[int]) -> str:
    """Both tables, as one nft script that replaces them."""
    mac, mask = _mac_prefix(subnet)
    allowed = ", ".join(str(p) for p in sorted(set(ports)))
    note = comment.replace('"', "'")
    lines = []
    for family in FAMILIES:
        lines += [f"table {family} {table} {{}}", f"delete table {family} {table}"]
    lines += [
        f"table bridge {table} {{",
        f'  comment "{note}"',
        "  chain isolate {",
        "    type filter hook forward priority -1; policy accept;",
        f"    ether saddr & {mask} == {mac} drop",
        f"    ether daddr & {mask} == {mac} drop",
        f"    ether type ip ip daddr {subnet} drop",
        "  }",
        "}",
        f"table inet {table} {{",
        f'  comment "{note}"',
        "  chain input {",
        "    type filter hook input priority filter - 1; policy accept;",
        f'    iifname "{bridge}" ct state established,related accept',
        f'    iifname "{bridge}" ip protocol icmp accept',
    ]
    if allowed:
        lines.append(f'    iifname "{bridge}" ip daddr {gateway} tcp dport {{ {allowed} }} accept')
    lines += [
        f'    iifname "{bridge}" drop',
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter - 1; policy accept;",
        f'    iifname "{bridge}" oifname "{bridge}" drop',
        f'    iifname "{bridge}" ct status dnat drop',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def apply(root, network: dict, ports: list[int]) -> str:
    """Make (or remake) both tables for ``network`` (jupybox's network state); -> the table name."""
    table = table_name(root, network["name"])
    nat.run(render(table, owner(root, network["name"]), network["bridge"], network["subnet"], network["gateway"],
                   ports))
    return table


def present(root, network: str) -> list[str]:
    """The families in which the spawner's table for ``network`` exists (and is the spawner's)."""
    table = table_name(root, network)
    mine = owner(root, network).replace('"', "'")
    out = []
    for family in FAMILIES:
        proc = subprocess.run([nat.nft_binary(), "list", "table", family, table], capture_output=True, text=True)
        if proc.returncode == 0 and f'comment "{mine}"' in proc.stdout:
            out.append(family)
    return out


def remove(root, network: str) -> None:
    """Delete the spawner's tables for ``network`` (only those whose comment says they are its)."""
    table = table_name(root, network)
    families = present(root, network)
    if families:
        nat.run("".join(f"delete table {family} {table}\n" for family in families))

