"""What a crash leaves behind, and that stop/rm/prune remove it (in a test namespace)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

pytestmark = [pytest.mark.root]

BB = "busybox:latest"
HTTPD = "echo ok > /tmp/index.html; exec httpd -f -p 80 -h /tmp"


def _state(net, name: str) -> dict:
    cid = net.ok("inspect", "-f", "{{.Id}}", name).strip()
    with open(os.path.join(net.root, "containers", cid, "state.json")) as f:
        return json.load(f)


def _wait_gone(pid: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)


def test_stop_and_rm_remove_veth_rules_and_address(net):
    net.ok("network", "create", "--subnet", "10.221.0.0/24", "tidy")
    net.ok("run", "-d", "--name", "svc", "--network", "tidy", "-p", "127.0.0.1:18100:80", BB, "sh", "-c", HTTPD)
    assert len(net.veths()) == 1 and "18100" in net.nft()
    net.ok("stop", "-t", "1", "svc")
    assert net.veths(expect=0) == [] and "18100" not in net.nft()
    state = net.network_state("tidy")
    assert state["endpoints"] == {} and list(state["reserved"].values()) == ["10.221.0.2"]  # kept for a restart
    net.ok("rm", "svc")
    assert net.network_state("tidy")["reserved"] == {}


def test_kill9_of_the_service_then_prune_leaves_nothing(net):
    net.ok("network", "create", "--subnet", "10.222.0.0/24", "crash")
    net.ok("run", "-d", "--name", "victim", "--network", "crash", "-p", "127.0.0.1:18101:80", BB, "sh", "-c", HTTPD)
    net.ok("run", "-d", "--name", "survivor", "--network", "crash", BB, "sleep", "60")
    assert net.fetch("http://127.0.0.1:18101/index.html").strip() == "ok"
    st = _state(net, "victim")
    os.kill(st["monitor_pid"], signal.SIGKILL)  # the store's service
    # the containers outlive it, still serving
    assert net.fetch("http://127.0.0.1:18101/index.html").strip() == "ok"
    os.kill(st["pid"], signal.SIGKILL)  # and the victim dies while nobody watches
    _wait_gone(st["pid"])
    # the rules are still there: nobody has looked yet
    assert "18101" in net.nft()
    out = net.ok("prune")  # a new service re-adopts both: the victim is cleaned up, then pruned
    assert "Deleted Containers" in out
    assert "18101" not in net.nft()
    state = net.network_state("crash")
    assert [ep["name"] for ep in state["endpoints"].values()] == ["survivor"]
    assert state["reserved"] == {}
    assert len(net.veths(expect=1)) == 1  # the survivor's
    # the port and the address are free again
    net.ok("run", "-d", "--name", "next", "--network", "crash", "-p", "127.0.0.1:18101:80", BB, "sh", "-c", HTTPD)
    assert net.ip_of("next") == "10.222.0.2"
    assert net.fetch("http://127.0.0.1:18101/index.html").strip() == "ok"
    net.ok("rm", "-f", "next", "survivor")
    assert net.veths(expect=0) == [] and "18101" not in net.nft()


def test_prune_removes_leftovers_of_a_crash_mid_start(net):
    """A monitor killed between the state file and the kernel: a stale endpoint, its map element,
    a veth on the bridge whose container never ran. prune finds all three."""
    net.ok("network", "create", "--subnet", "10.223.0.0/24", "mid")
    net.ok("run", "--rm", "--network", "mid", BB, "true")  # the bridge and the table exist
    state = net.network_state("mid")
    table = [ln.split()[2] for ln in net.nft().splitlines() if ln.startswith("table ip jupybox_")][0]
    ghost = "f" * 64
    veth = f"jv{ghost[:8]}-{state['id'][:4]}"
    net.sh(f"ip link add {veth} type veth peer name ghostpeer && ip link set {veth} master {state['bridge']} up").check_returncode()
    net.sh(f"nft add element ip {table} pub_any '{{ tcp . 18102 : 10.223.0.9 . 80 }}'").check_returncode()
    state["endpoints"][ghost] = {
        "name": "ghost", "hostname": "ghost", "ip": "10.223.0.9", "mac": "02:42:0a:df:00:09", "veth": veth,
        "ifname": "eth0", "aliases": [], "extra_hosts": [], "primary": True, "owner": [2**22 - 7, 1],
        "ports": [{"host_ip": "", "host_port": 18102, "container_port": 80, "protocol": "tcp"}],
    }
    with open(os.path.join(net.root, "networks", "mid.json"), "w") as f:
        json.dump(state, f)
    assert veth in net.links() and "18102" in net.nft()
    net.ok("prune")
    assert veth not in net.links() and "ghostpeer" not in net.links()
    assert "18102" not in net.nft()
    assert net.network_state("mid")["endpoints"] == {}


@pytest.mark.leakcheck
def test_attached_runs_leave_no_processes_mounts_or_fds(net):
    for _ in range(3):
        net.ok("run", "--rm", "--network", "bridge", "-p", "127.0.0.1:18103:80", BB, "true")
    assert net.veths(expect=0) == [] and "18103" not in net.nft()
    assert net.network_state("bridge")["endpoints"] == {}


def test_a_failed_attach_is_a_one_line_error_and_leaves_nothing(net):
    net.ok("network", "create", "--subnet", "10.224.0.0/24", "broken")
    state = net.network_state("broken")
    # the bridge replaced by a link that cannot be a master: plugging the veth fails
    net.sh(f"ip link del {state['bridge']} && ip link add {state['bridge']} type veth peer name brokenpeer").check_returncode()
    p = net.jb("run", "--name", "unlucky", "--network", "broken", "-p", "127.0.0.1:18104:80", BB, "true")
    assert p.returncode == 125
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jupybox: connecting the container to its network: creating veth")
    assert net.network_state("broken")["endpoints"] == {}
    assert [v for v in net.veths() if v != state["bridge"]] == [] and "18104" not in net.nft()
    assert json.loads(net.ok("inspect", "-f", "{{json .State}}", "unlucky"))["Running"] is False
    # the port is free again
    net.ok("run", "--rm", "-p", "127.0.0.1:18104:80", BB, "true")
