"""Bridge and user networks: addresses, routes, names, connect/disconnect (in a test namespace)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.root]

BB = "busybox:latest"


def test_none_has_only_lo(net):
    out = net.ok("run", "--rm", "--network", "none", BB, "sh", "-c", "ls /sys/class/net; ip -o -4 addr")
    names = out.split()
    assert names[0] == "lo" and "eth0" not in names
    assert "127.0.0.1/8" in out and out.count("inet ") == 1
    assert net.veths() == []  # nothing was plugged


def test_bridge_address_route_and_gateway(net):
    out = net.ok("run", "--rm", "--network", "bridge", BB, "sh", "-c",
                 "ip -o -4 addr show eth0; ip route; cat /etc/hosts; hostname; "
                 "ping -c1 -W2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gw-ok")
    assert "gw-ok" in out
    state = net.network_state("bridge")
    gateway = state["gateway"]
    assert f"default via {gateway} dev eth0" in out
    addr = next(w for w in out.split() if w.startswith(state["subnet"].split(".")[0] + ".") and "/" in w)
    ip = addr.split("/")[0]
    hostname = out.split()[-2]
    assert f"{ip}\t{hostname}" in out  # its own address and name in /etc/hosts
    assert state["endpoints"] == {}  # --rm: released
    assert net.veths(expect=0) == []


def test_two_containers_talk_by_name_on_a_user_network(net):
    net.ok("network", "create", "--subnet", "10.213.0.0/24", "appnet")
    net.ok("run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www", BB,
           "sh", "-c", "echo hello-from-web > /tmp/index.html; httpd -f -p 8000 -h /tmp")
    # (a listener that answers: busybox's nc client may drop what it sends when stdin ends at once)
    net.ok("run", "-d", "--name", "talker", "--network", "appnet", BB, "nc", "-ll", "-p", "7000", "-e", "echo", "over-nc")
    out = net.ok("run", "--rm", "--name", "client", "--network", "appnet", BB, "sh", "-c",
                 "ping -c1 -W2 web >/dev/null && echo ping-ok; "
                 "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://www:8000/index.html && break; sleep 0.2; done; "
                 "for i in 1 2 3 4 5 6 7 8 9 10; do nc talker 7000 </dev/null | grep over-nc && break; sleep 0.2; done; "
                 "grep -w web /etc/hosts")
    assert "ping-ok" in out
    assert "hello-from-web" in out
    web_ip = net.ip_of("web", "appnet")
    assert web_ip.startswith("10.213.0.")
    assert web_ip in out  # the hosts line that resolved it
    assert "over-nc" in out
    # the peers' hosts files follow: web knows talker, and client is gone again
    hosts = net.ok("exec", "web", "cat", "/etc/hosts")
    assert "talker" in hosts and "client" not in hosts
    net.ok("rm", "-f", "web", "talker")
    net.ok("network", "rm", "appnet")


def test_default_bridge_does_not_resolve_names(net):
    net.ok("run", "-d", "--name", "quiet", "--network", "bridge", BB, "sleep", "30")
    out = net.ok("run", "--rm", "--network", "bridge", BB, "sh", "-c", "grep -c quiet /etc/hosts || true")
    assert out.strip() == "0"  # docker's rule: names only on user networks
    net.ok("rm", "-f", "quiet")


def test_addresses_reused_after_rm_and_kept_across_restart(net):
    net.ok("network", "create", "--subnet", "10.214.0.0/24", "reuse")
    net.ok("run", "-d", "--name", "a", "--network", "reuse", BB, "sleep", "60")
    net.ok("run", "-d", "--name", "b", "--network", "reuse", BB, "sleep", "60")
    a, b = net.ip_of("a"), net.ip_of("b")
    assert a == "10.214.0.2" and b == "10.214.0.3"  # never the same live address twice
    net.ok("stop", "-t", "0", "b")
    net.ok("start", "b")
    assert net.ip_of("b") == b  # a restart keeps its address
    net.ok("rm", "-f", "a")
    net.ok("run", "-d", "--name", "c", "--network", "reuse", BB, "sleep", "60")
    assert net.ip_of("c") == a  # the removed container's address is handed out again
    net.ok("rm", "-f", "b", "c")
    assert net.network_state("reuse")["endpoints"] == {}
    assert net.network_state("reuse")["reserved"] == {}


def test_network_rm_refuses_while_attached(net):
    net.ok("network", "create", "busy")
    bridge = net.network_state("busy")["bridge"]
    net.ok("run", "-d", "--name", "holder", "--network", "busy", BB, "sleep", "60")
    p = net.jb("network", "rm", "busy")
    assert p.returncode != 0
    assert "active endpoints" in p.stderr and "holder" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert bridge in net.links()
    net.ok("rm", "-f", "holder")
    net.ok("network", "rm", "busy")
    assert bridge not in net.links()
    assert "busy" not in net.ok("network", "ls")
    p = net.jb("network", "rm", "bridge")
    assert p.returncode != 0 and "pre-defined" in p.stderr


def test_unknown_network_and_bad_options_are_one_line_errors(net):
    p = net.jb("run", "--rm", "--network", "nosuchnet", BB, "true")
    assert p.returncode == 125 and p.stderr.strip() == "jupybox: network nosuchnet not found"
    p = net.jb("run", "--rm", "--network", "none", "-p", "8080:80", BB, "true")
    assert p.returncode == 125 and "bridge network" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = net.jb("run", "--rm", "--network", "bridge", "--network-alias", "x", BB, "true")
    assert p.returncode == 125 and "user-defined networks" in p.stderr
    p = net.jb("network", "create", "--subnet", "10.215.0.1/24", "badnet")
    assert p.returncode == 125 and "host bits" in p.stderr
    net.ok("network", "create", "--subnet", "10.216.0.0/16", "first")
    p = net.jb("network", "create", "--subnet", "10.216.5.0/24", "second")
    assert p.returncode == 125 and "overlaps" in p.stderr


def test_connect_and_disconnect_a_running_container(net):
    net.ok("network", "create", "--subnet", "10.217.0.0/24", "front")
    net.ok("network", "create", "--subnet", "10.218.0.0/24", "back")
    net.ok("run", "-d", "--name", "app", "--network", "front", BB, "sleep", "60")
    net.ok("run", "-d", "--name", "db", "--network", "back", BB, "sleep", "60")
    net.ok("network", "connect", "--alias", "api", "back", "app")
    out = net.ok("exec", "app", "ip", "-o", "-4", "addr")
    assert "eth0" in out and "10.217.0." in out and "eth1" in out and "10.218.0." in out
    settings = json.loads(net.ok("inspect", "-f", "{{json .NetworkSettings.Networks}}", "app"))
    assert settings["back"]["IPAddress"].startswith("10.218.0.") and settings["back"]["Aliases"] == ["api"]
    assert net.ok("exec", "db", "sh", "-c", "ping -c1 -W2 api >/dev/null && echo ok").strip() == "ok"
    assert "app" in json.dumps(json.loads(net.ok("network", "inspect", "back"))[0]["Containers"])
    net.ok("network", "disconnect", "back", "app")
    out = net.ok("exec", "app", "ip", "-o", "-4", "addr")
    assert "10.218.0." not in out and "eth1" not in out
    assert "app" not in net.ok("exec", "db", "cat", "/etc/hosts")
    p = net.jb("network", "disconnect", "back", "app")
    assert p.returncode != 0 and "not connected" in p.stderr
    net.ok("rm", "-f", "app", "db")


def test_dns_and_add_host(net):
    out = net.ok("run", "--rm", "--network", "bridge", "--dns", "10.219.0.53", "--add-host", "db.local:10.219.0.7",
                 BB, "cat", "/etc/resolv.conf", "/etc/hosts")
    assert "nameserver 10.219.0.53" in out and "10.219.0.7\tdb.local" in out
    out = net.ok("run", "--rm", "--network", "none", "--add-host", "x.local:10.219.0.8", BB, "cat", "/etc/hosts")
    assert "10.219.0.8\tx.local" in out
    p = net.jb("run", "--rm", "--dns", "not-an-ip", BB, "true")
    assert p.returncode == 125 and "--dns" in p.stderr


def test_network_ls_and_inspect(net):
    nid = net.ok("network", "create", "--subnet", "10.220.0.0/24", "--label", "team=ml", "listed").strip()
    rows = net.ok("network", "ls").splitlines()
    assert rows[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    names = [r.split()[1] for r in rows[1:]]
    assert {"bridge", "host", "none", "listed"} <= set(names)
    info = json.loads(net.ok("network", "inspect", "listed"))[0]
    assert info["Id"] == nid and info["IPAM"]["Config"] == [{"Subnet": "10.220.0.0/24", "Gateway": "10.220.0.1"}]
    assert info["Labels"] == {"team": "ml"} and info["Driver"] == "bridge"
    assert net.ok("network", "inspect", "-f", "{{.Id}}", nid[:12]).strip() == nid


def test_looking_at_the_default_bridge_does_not_make_it(net):
    info = json.loads(net.ok("network", "inspect", "bridge"))[0]
    assert info["Name"] == "bridge" and info["Driver"] == "bridge" and info["Containers"] == {}
    assert "bridge" in net.ok("network", "ls")
    assert not [ln for ln in net.links() if ln.startswith("jbx-")] and "jupybox_" not in net.nft()
    net.ok("run", "--rm", "--network", "bridge", BB, "true")  # the first use makes it
    assert [ln for ln in net.links() if ln.startswith("jbx-")] and "jupybox_" in net.nft()
