"""/etc/hosts and /etc/resolv.conf of a networked container.

Name resolution on a user network is the hosts file: each container's ``hosts`` lists every
container of its user networks (name, aliases, short id). The files live in the container's
directory and are bind-mounted at /etc/hosts: rewriting them in place (same inode) changes what a
running container sees, so a container that joins or leaves updates its peers' files. No DNS
server process per network, nothing to start or to leak; the cost is that tools that bypass
getaddrinfo (``nslookup``) do not see the names.
"""

from __future__ import annotations

import os

BASE = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def render_hosts(hostname: str, own_ip: str | None, peers: list[tuple[str, list[str]]], extra: list[str]) -> str:
    """``peers``: (ip, names) of the containers on its user networks, itself included."""
    lines = [BASE]
    for item in extra:
        host, ip = parse_add_host(item)
        lines.append(f"{ip}\t{host}\n")
    seen_own = False
    for ip, names in peers:
        names = list(dict.fromkeys(names))
        if ip == own_ip and not seen_own:
            names = [hostname] + [n for n in names if n != hostname]
            seen_own = True
        lines.append(f"{ip}\t{' '.join(names)}\n")
    if own_ip and not seen_own:
        lines.append(f"{own_ip}\t{hostname}\n")
    return "".join(lines)


def parse_add_host(item: str) -> tuple[str, str]:
    """docker's --add-host HOST:IP (also HOST=IP)."""
    from .. import errors

    sep = "=" if "=" in item else ":"
    host, _, ip = item.partition(sep)
    if not host or not ip:
        raise errors.UsageError(f"invalid argument {item!r} for --add-host: HOST:IP is expected")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    return host, ip


_host_resolv: tuple = (None, "")  # (mtime of /etc/resolv.conf, what it gives a container)


def render_resolv(dns: list[str], search: list[str] | None = None) -> str:
    """--dns servers, else the host's resolver minus loopback servers (unreachable from a
    container's namespace; with systemd-resolved, its upstream list)."""
    global _host_resolv
    if dns:
        out = "".join(f"nameserver {d}\n" for d in dns)
        if search:
            out += "search " + " ".join(search) + "\n"
        return out
    try:
        mtime = os.stat("/etc/resolv.conf").st_mtime_ns
    except OSError:
        mtime = None
    if mtime is not None and _host_resolv[0] == mtime:
        return _host_resolv[1]
    out = _from_host()
    _host_resolv = (mtime, out)
    return out


def _from_host() -> str:
    text = ""
    for path in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if any(_usable(ln) for ln in text.splitlines()) or path.startswith("/run"):
            break
    return "".join(ln + "\n" for ln in text.splitlines() if not ln.startswith("nameserver") or _usable(ln))


def _usable(line: str) -> bool:
    parts = line.split()
    return len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127.") and parts[1] != "::1"


def write_in_place(path, text: str) -> bool:
    """Rewrite a bind-mounted file without changing its inode; False if it is gone.

    pwrite then ftruncate, not O_TRUNC: ext4 flushes a file truncated to zero and rewritten when
    it is closed (auto_da_alloc), a cost on every container start."""
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    return True
