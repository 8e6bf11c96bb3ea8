"""Published ports, reached from the test namespace's 127.0.0.1; conflicts; the API path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.root]

BB = "busybox:latest"
HTTPD = "echo served-by-$(hostname) > /tmp/index.html; exec httpd -f -p 80 -h /tmp"


def test_published_port_reached_from_loopback(net):
    cid = net.ok("run", "-d", "--name", "srv", "-p", "127.0.0.1:18080:80", "-p", "18081:80", BB,
                 "sh", "-c", HTTPD).strip()
    assert net.fetch("http://127.0.0.1:18080/index.html").strip() == f"served-by-{cid[:12]}"
    assert net.fetch("http://127.0.0.1:18081/index.html").strip() == f"served-by-{cid[:12]}"  # 0.0.0.0 covers lo
    assert net.ok("port", "srv").splitlines() == ["80/tcp -> 127.0.0.1:18080", "80/tcp -> 0.0.0.0:18081"]
    assert net.ok("port", "srv", "80").splitlines() == ["127.0.0.1:18080", "0.0.0.0:18081"]
    ps = net.ok("ps")
    assert "127.0.0.1:18080->80/tcp, 0.0.0.0:18081->80/tcp" in ps and "PORTS" in ps.splitlines()[0]
    ports = json.loads(net.ok("inspect", "-f", "{{json .NetworkSettings.Ports}}", "srv"))
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}, {"HostIp": "0.0.0.0", "HostPort": "18081"}]}
    bindings = json.loads(net.ok("inspect", "-f", "{{json .HostConfig.PortBindings}}", "srv"))
    assert bindings["80/tcp"][0] == {"HostIp": "127.0.0.1", "HostPort": "18080"}
    # a container on the same bridge reaches it through the host port too (DNAT + masquerade)
    gw = net.network_state("bridge")["gateway"]
    out = net.ok("run", "--rm", "--network", "bridge", BB, "wget", "-q", "-O-", f"http://{gw}:18081/index.html")
    assert out.strip() == f"served-by-{cid[:12]}"
    net.ok("rm", "-f", "srv")
    assert "18080" not in net.nft() and "18081" not in net.nft()  # the rules went with it
    assert net.fetch("http://127.0.0.1:18080/index.html", timeout=0.5).startswith("FAILED")
    # and the port can be published again
    cid = net.ok("run", "-d", "-p", "127.0.0.1:18080:80", BB, "sh", "-c", HTTPD).strip()
    assert net.fetch("http://127.0.0.1:18080/index.html").strip() == f"served-by-{cid[:12]}"
    net.ok("rm", "-f", cid)


def test_publish_on_a_port_the_kernel_picks(net):
    net.ok("run", "-d", "--name", "anyport", "-p", "127.0.0.1::80", BB, "sh", "-c", HTTPD)
    line = net.ok("port", "anyport", "80/tcp").strip()
    host, port = line.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 1024
    assert net.fetch(f"http://127.0.0.1:{port}/index.html").startswith("served-by-")
    net.ok("rm", "-f", "anyport")


def _udp_noports(net, name: str) -> int:
    """Udp NoPorts of the container's namespace: datagrams that reached it with no socket listening."""
    lines = [ln.split() for ln in net.ok("exec", name, "cat", "/proc/net/snmp").splitlines() if ln.startswith("Udp:")]
    return int(lines[1][lines[0].index("NoPorts")])


def test_udp_port(net):
    # busybox has no UDP server: the container's NoPorts counter shows the datagrams arrive
    net.ok("run", "-d", "--name", "udp", "-p", "127.0.0.1:18090:9000/udp", BB, "sleep", "60")
    assert net.ok("port", "udp").strip() == "9000/udp -> 127.0.0.1:18090"
    before = _udp_noports(net, "udp")
    send = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'x', ('127.0.0.1', 18090)) for _ in range(3)]"
    subprocess.run(net.prefix() + [sys.executable, "-c", send], check=True)
    assert _udp_noports(net, "udp") >= before + 3
    net.ok("rm", "-f", "udp")


def test_published_port_conflict_is_a_clear_error(net):
    net.ok("run", "-d", "--name", "first", "-p", "18082:80", BB, "sh", "-c", HTTPD)
    p = net.jb("run", "-d", "--name", "second", "-p", "127.0.0.1:18082:80", BB, "sh", "-c", HTTPD)
    assert p.returncode == 125
    assert p.stderr.strip().splitlines() == [
        "jupybox: Bind for 127.0.0.1:18082 failed: port is already allocated (by container first)"]
    # nothing of the failed container stays plugged in
    state = net.network_state("bridge")
    assert [ep["name"] for ep in state["endpoints"].values()] == ["first"]
    # a host process holding a port: the same error
    holder = subprocess.Popen(net.prefix() + [sys.executable, "-c", textwrap.dedent("""
        import socket, sys, time
        s = socket.socket(); s.bind(("127.0.0.1", 18083)); s.listen(); print("ready", flush=True); time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        p = net.jb("run", "--rm", "-p", "127.0.0.1:18083:80", BB, "true")
        assert p.returncode == 125 and p.stderr.strip() == "jupybox: Bind for 127.0.0.1:18083 failed: port is already allocated"
    finally:
        holder.kill()
        holder.wait()
    # two containers may publish the same container port on different host ports
    net.ok("run", "-d", "--name", "third", "-p", "18084:80", BB, "sh", "-c", HTTPD)
    net.ok("rm", "-f", "first", "third")


def test_api_run_with_bridge_and_ports(net):
    """jupybox.run through the store's service, inside the namespace."""
    script = textwrap.dedent(f"""
        import json, tempfile, time, urllib.request
        import jupybox
        c = jupybox.run("{BB}", ["sh", "-c", {HTTPD!r}], root={net.root!r}, network="bridge",
                        publish=["127.0.0.1:18085:80"], name="apisrv")
        body = None
        for _ in range(50):
            try:
                body = urllib.request.urlopen("http://127.0.0.1:18085/index.html", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryFile() as out:
            rc = jupybox.run("{BB}", ["ip", "-o", "-4", "addr", "show", "eth0"], root={net.root!r},
                             network="bridge", remove=True, stdout=out).wait()
            out.seek(0)
            addr = out.read().decode()
        print(json.dumps({{"body": body, "ports": c.ports(), "rc": rc, "addr": addr}}))
        c.kill(); c.wait(); c.remove()
    """)
    p = subprocess.run(net.prefix() + [sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["body"].startswith("served-by-")
    assert got["ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18085"}]}
    assert got["rc"] == 0 and "eth0" in got["addr"] and "inet " in got["addr"]
    assert net.eventually(lambda: net.network_state("bridge")["endpoints"] == {})


def test_publish_all_exposed_ports(net, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox:latest\nEXPOSE 80 53/udp\nCMD ["sh", "-c", "echo exposed > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]\n')
    net.ok("build", "-t", "exposing:1", str(tmp_path), timeout=120)
    net.ok("run", "-d", "--name", "pa", "-P", "exposing:1")  # -P alone: the default bridge
    lines = net.ok("port", "pa").splitlines()
    assert [ln.split(" -> ")[0] for ln in lines] == ["53/udp", "80/tcp"]
    http = int(net.ok("port", "pa", "80").strip().rsplit(":", 1)[1])
    assert net.fetch(f"http://127.0.0.1:{http}/index.html").strip() == "exposed"
    assert json.loads(net.ok("inspect", "-f", "{{json .HostConfig.PublishAllPorts}}", "pa")) is True
    net.ok("rm", "-f", "pa")


def test_api_rerun_with_the_same_port_right_after_the_exit(net):
    """A re-run cell: the store's service reports the exit before it cleans up; the same port must
    be free for the next run at once."""
    script = textwrap.dedent(f"""
        import jupybox
        codes = []
        for i in range(5):
            c = jupybox.run("{BB}", ["true"], root={net.root!r}, publish=["127.0.0.1:18086:80"], remove=True)
            codes.append(c.wait())
        print(codes)
    """)
    p = subprocess.run(net.prefix() + [sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0, 0]"
    assert net.eventually(lambda: "18086" not in net.nft())
    assert net.eventually(lambda: net.network_state("bridge")["endpoints"] == {})
