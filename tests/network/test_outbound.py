"""Outbound networking on the default bridge, as a user gets it: a container resolves a name and
fetches a page from "the internet", here a fake upstream (a second network namespace joined by a
veth, serving DNS and HTTP on 10.99.0.2) that the test makes. Then the store's bridge is deleted by
hand, and a stale bridge of a store that is gone sits on the same subnet: it still works, or fails
in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

pytestmark = [pytest.mark.root]

BB = "busybox:latest"

UPSTREAM = textwrap.dedent(r"""
    import http.server, socket, socketserver, struct, threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from upstream\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    def dns():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("10.99.0.2", 53))
        while True:
            q, addr = s.recvfrom(512)
            tid, flags, qd = struct.unpack(">HHH", q[:6])
            i, labels = 12, []
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += 1 + q[i]
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            question = q[12:i + 5]
            name = ".".join(labels)
            if name != "example.test":
                s.sendto(struct.pack(">HHHHHH", tid, 0x8183, 1, 0, 0, 0) + question, addr)  # NXDOMAIN
            elif qtype == 1:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("10.99.0.2")
                s.sendto(struct.pack(">HHHHHH", tid, 0x8180, 1, 1, 0, 0) + question + answer, addr)
            else:  # AAAA and the rest: the name exists, with no such record
                s.sendto(struct.pack(">HHHHHH", tid, 0x8180, 1, 0, 0, 0) + question, addr)

    threading.Thread(target=dns, daemon=True).start()
    socketserver.TCPServer(("10.99.0.2", 80), Page).serve_forever()
""")


@pytest.fixture
def upstream(net):
    """A fake internet behind the test's namespace: 10.99.0.2 answers DNS (example.test) and HTTP."""
    name = f"jbxu-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    server = None
    try:
        up = ["nsenter", f"--net=/run/netns/{name}"]
        subprocess.run(["ip", "link", "add", "up0", "netns", net.ns, "type", "veth", "peer", "name", "eth0",
                        "netns", name], check=True)
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "10.99.0.2/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"]):
            subprocess.run(up + cmd, check=True)
        for cmd in ("ip addr add 10.99.0.1/24 dev up0", "ip link set up0 up", "ip route add default via 10.99.0.2"):
            assert net.sh(cmd).returncode == 0, cmd
        server = subprocess.Popen(up + [sys.executable, "-c", UPSTREAM], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while "hello" not in net.fetch("http://10.99.0.2/", timeout=1) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield name
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", name], check=False)


def _fetch(net) -> subprocess.CompletedProcess:
    return net.jb("run", "--rm", "--dns", "10.99.0.2", BB, "sh", "-c",
                  "nslookup example.test 10.99.0.2 >/dev/null && timeout 10 wget -q -O- http://example.test/")


def test_a_default_container_reaches_the_upstream_by_name(net, upstream):
    out = _fetch(net)
    assert (out.returncode, out.stdout) == (0, "hello from upstream\n"), out.stderr


def test_a_deleted_bridge_comes_back_with_its_subnet(net, upstream):
    assert _fetch(net).returncode == 0
    state = net.network_state("bridge")
    assert net.sh(f"ip link del {state['bridge']}").returncode == 0  # an admin, or a tidy script
    out = _fetch(net)
    assert (out.returncode, out.stdout) == (0, "hello from upstream\n"), out.stderr
    after = net.network_state("bridge")
    assert after["subnet"] == state["subnet"] and after["bridge"] == state["bridge"]
    link = net.sh(f"ip -o link show {state['bridge']}").stdout
    alias = link.split("alias ", 1)[1].strip() if "alias " in link else ""
    assert alias.startswith("jupybox ") and alias.endswith(str(net.root)), link  # its owner, named


def test_a_stale_bridge_of_a_store_that_is_gone_is_collected(net, upstream, tmp_path):
    assert _fetch(net).returncode == 0
    state = net.network_state("bridge")
    gone = tmp_path / "a-store-deleted-long-ago"
    mntns = os.stat("/proc/self/ns/mnt").st_ino
    gateway = state["gateway"]
    net.sh(f"ip link del {state['bridge']}")
    # another store's bridge, same subnet, left behind when that store was deleted
    assert net.sh(f"ip link add jbx-stale0 type bridge && ip link set jbx-stale0 alias "
                  f"'jupybox {'ab' * 16} {mntns} {gone}' && ip addr add {gateway}/16 dev jbx-stale0 && "
                  "ip link set jbx-stale0 up").returncode == 0
    out = _fetch(net)
    assert (out.returncode, out.stdout) == (0, "hello from upstream\n"), out.stderr
    assert "jbx-stale0" not in net.links()


def test_a_foreign_bridge_on_the_subnet_fails_in_one_line(net, upstream):
    assert _fetch(net).returncode == 0
    state = net.network_state("bridge")
    net.sh(f"ip link del {state['bridge']}")
    # not ours (no alias of a store): never deleted, and the run says why it cannot go on
    assert net.sh(f"ip link add other0 type bridge && ip addr add {state['gateway']}/16 dev other0 && "
                  "ip link set other0 up").returncode == 0
    out = _fetch(net)
    assert out.returncode == 125, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "already routed through other0" in lines[0], out.stderr
    assert "other0" in net.links()


def test_a_running_container_is_plugged_back_into_a_remade_bridge(net, upstream):
    """The bridge deleted while a container runs: the next run makes it again and puts the running
    container's veth back on it, so that container reaches the upstream again too."""
    net.ok("run", "-d", "--name", "long", "--dns", "10.99.0.2", BB, "sleep", "600")
    try:
        get = ["exec", "long", "sh", "-c", "timeout 10 wget -q -O- http://example.test/"]
        assert net.jb(*get).stdout == "hello from upstream\n"
        state = net.network_state("bridge")
        assert net.sh(f"ip link del {state['bridge']}").returncode == 0
        assert net.jb(*get).returncode != 0  # cut off, until the bridge comes back
        assert _fetch(net).returncode == 0  # the next run makes it again
        out = net.jb(*get)
        assert (out.returncode, out.stdout) == (0, "hello from upstream\n"), out.stderr
    finally:
        net.jb("rm", "-f", "long")


def test_a_stale_table_of_a_store_that_is_gone_is_collected(net, upstream):
    """An nftables table left by a store deleted long ago (its comment names it) goes at the next
    run; one that names no store of ours stays."""
    mntns = os.stat("/proc/self/ns/mnt").st_ino
    gone = f"/tmp/jbx-gone-{os.getpid()}"  # (nftables keeps 128 bytes of a comment: a short path)
    assert not os.path.exists(gone)
    stale = f'add table ip jupybox_0badf00d {{ comment "jupybox {"cd" * 16} {mntns} {gone}"; }}'
    foreign = 'add table ip jupybox_0f0f0f0f { comment "not a store of jupybox"; }'
    for rules in (stale, foreign):
        assert net.sh(f"nft '{rules}'").returncode == 0, rules
    try:
        assert _fetch(net).returncode == 0
        tables = net.sh("nft list tables").stdout
        assert "jupybox_0badf00d" not in tables and "jupybox_0f0f0f0f" in tables, tables
    finally:
        net.sh("nft delete table ip jupybox_0f0f0f0f")
