"""The pure parts: -p syntax, address arithmetic, the nftables script, hosts files (no root)."""

from __future__ import annotations

import os

import pytest

from jupybox import errors
from jupybox.network import etc, ipam, nat
from jupybox.network import ports as P
from jupybox.runtime.options import make_spec


def port(host_ip="", host_port=0, ctr=80, proto="tcp"):
    return {"host_ip": host_ip, "host_port": host_port, "container_port": ctr, "protocol": proto}


@pytest.mark.parametrize("text,expected", [
    ("80", [port()]),
    ("8080:80", [port(host_port=8080)]),
    ("127.0.0.1:8080:80", [port("127.0.0.1", 8080)]),
    ("127.0.0.1::80", [port("127.0.0.1", 0)]),
    ("0.0.0.0:8080:80/udp", [port("", 8080, 80, "udp")]),
    ("53/UDP", [port(proto="udp", ctr=53)]),
    ("8000-8001:9000-9001", [port(host_port=8000, ctr=9000), port(host_port=8001, ctr=9001)]),
])
def test_parse_publish(text, expected):
    assert P.parse_publish(text) == expected


@pytest.mark.parametrize("text,message", [
    ("", "no container port"), ("8080:", "no container port"), ("x:80", "invalid host port"),
    ("80/sctp", "invalid protocol"), ("1.2.3:80:80", "invalid host address"), ("70000:80", "invalid host port"),
    ("8000-8002:9000-9001", "different lengths"), ("[::1]:80:80", "IPv6"), ("a:b:c:d", "invalid port specification"),
])
def test_parse_publish_errors(text, message):
    with pytest.raises(errors.UsageError, match=message):
        P.parse_publish(text)


def test_normalize_docker_py_forms():
    got = P.normalize({"80/tcp": 8080, "53/udp": ("127.0.0.1", 5353), "22": None})
    assert got == [port(host_port=8080), port("127.0.0.1", 5353, 53, "udp"), port(ctr=22)]


def test_publish_all_adds_exposed_ports_not_already_published():
    cfg = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}
    got = P.merge_publish_all([port(host_port=8080)], cfg)
    assert got == [port(host_port=8080), port(ctr=53, proto="udp")]


def test_clash_rules():
    assert P.clash(port(host_port=80), port("127.0.0.1", 80))  # wildcard covers every address
    assert not P.clash(port("127.0.0.1", 80), port("127.0.0.2", 80))
    assert not P.clash(port(host_port=80), port(host_port=80, proto="udp"))
    assert P.describe(port("127.0.0.1", 8080)) == "127.0.0.1:8080->80/tcp"


def test_ports_make_the_default_network_bridge():
    assert make_spec("img", publish=["8080:80"]).network == "bridge"
    assert make_spec("img", publish_all=True).network == "bridge"
    assert make_spec("img").network == ("bridge" if os.geteuid() == 0 else "host")  # docker's default
    assert make_spec("img", publish=["8080:80"], network="host").network == "host"
    spec = make_spec("img", network="n1", network_aliases="db", dns=["10.0.0.53"], add_hosts={"h": "10.0.0.1"})
    assert (spec.network_aliases, spec.dns, spec.add_hosts) == (["db"], ["10.0.0.53"], ["h:10.0.0.1"])


def test_cidr_and_allocation():
    net, prefix = ipam.parse_cidr("10.1.0.0/24")
    assert ipam.cidr(net, prefix) == "10.1.0.0/24"
    gw = ipam.ip2int("10.1.0.1")
    first = ipam.allocate(net, prefix, gw, set())
    assert ipam.int2ip(first) == "10.1.0.2"
    assert ipam.int2ip(ipam.allocate(net, prefix, gw, {first})) == "10.1.0.3"
    # the preferred (previous) address when free; softly reserved ones last
    assert ipam.int2ip(ipam.allocate(net, prefix, gw, {first}, prefer=ipam.ip2int("10.1.0.9"))) == "10.1.0.9"
    assert ipam.int2ip(ipam.allocate(net, prefix, gw, set(), avoid={first})) == "10.1.0.3"
    small = ipam.parse_cidr("10.2.0.0/30")  # .1 gateway, .2 the only host
    assert ipam.int2ip(ipam.allocate(*small, ipam.ip2int("10.2.0.1"), set(), avoid={ipam.ip2int("10.2.0.2")})) == "10.2.0.2"
    with pytest.raises(errors.RuntimeFailure, match="no available"):
        ipam.allocate(*small, ipam.ip2int("10.2.0.1"), {ipam.ip2int("10.2.0.2")})
    with pytest.raises(errors.UsageError, match="host bits"):
        ipam.parse_cidr("10.1.0.1/24")
    assert ipam.overlaps(ipam.parse_cidr("10.0.0.0/8"), ipam.parse_cidr("10.5.0.0/16"))
    assert not ipam.overlaps(ipam.parse_cidr("10.0.0.0/16"), ipam.parse_cidr("10.1.0.0/16"))


def test_pick_subnet_skips_taken_pools():
    first = ipam.pick_subnet([])
    second = ipam.pick_subnet([first])
    assert first != second and not ipam.overlaps(first, second)


def test_nft_script():
    text = nat.render("jupybox_t", [{"bridge": "jbx-a", "subnet": "10.1.0.0/24"}],
                      [(port("127.0.0.1", 8080), "10.1.0.2"), (port("", 5353, 53, "udp"), "10.1.0.3")])
    assert text.startswith("table ip jupybox_t {}\ndelete table ip jupybox_t\n")  # an atomic replace
    assert "elements = { 127.0.0.1 . tcp . 8080 : 10.1.0.2 . 80 }" in text
    assert "elements = { udp . 5353 : 10.1.0.3 . 53 }" in text
    assert 'ip saddr 10.1.0.0/24 oifname != "jbx-a" masquerade' in text
    assert 'iifname { "jbx-a" } ip daddr 127.0.0.0/8 drop' in text
    assert nat.render("jupybox_t", [], []) == "table ip jupybox_t {}\ndelete table ip jupybox_t\n"
    assert nat.table_name("/a") != nat.table_name("/b") and len(nat.table_name("/a")) == len("jupybox_") + 8


def test_hosts_file():
    text = etc.render_hosts("abc123", "10.1.0.2", [("10.1.0.2", ["web", "www", "abc123"]), ("10.1.0.3", ["db"])],
                            ["gw.local:10.1.0.1"])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.1.0.1\tgw.local" in lines
    assert "10.1.0.2\tabc123 web www" in lines and "10.1.0.3\tdb" in lines
    assert etc.render_hosts("h", "10.1.0.9", [], []).splitlines()[-1] == "10.1.0.9\th"
    with pytest.raises(errors.UsageError, match="--add-host"):
        etc.parse_add_host("nocolon")


def test_resolv_conf():
    assert etc.render_resolv(["10.0.0.53", "10.0.0.54"]) == "nameserver 10.0.0.53\nnameserver 10.0.0.54\n"
    assert "nameserver 127." not in etc.render_resolv([])


def test_missing_nft_is_a_one_line_error(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if str(p).endswith("/nft") else real(p))
    with pytest.raises(errors.RuntimeFailure) as e:
        nat.nft_binary()
    assert str(e.value) == "nft is not installed: bridge networks need nftables (apt-get install nftables)"
