"""network/netlink.py's bridge requests and dumps, checked against iproute2's view of the same
namespace (a tool that is not ours), in a network namespace the test makes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from jupybox.network import bridge, netlink


@pytest.fixture
def inside(netns):
    """Run the test body's netlink calls inside the namespace (this thread joins it and comes back)."""
    from jupybox.linux import syscalls as sc

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    sc.setns(target, sc.CLONE_NEWNET)
    try:
        yield netns
    finally:
        sc.setns(home, sc.CLONE_NEWNET)
        os.close(home)
        os.close(target)


def ip(ns: str, *args: str) -> list[dict]:
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def test_a_bridge_made_by_ensure_is_what_ip_sees(inside):
    made = bridge.ensure("jbxt-br0", "10.213.7.1", 24, "02:42:0a:d5:07:01", alias="jupybox:test-owner")
    assert made is True
    (link,) = ip(inside, "-d", "link", "show", "jbxt-br0")
    assert link["linkinfo"]["info_kind"] == "bridge"
    assert link["address"] == "02:42:0a:d5:07:01"
    assert link["ifalias"] == "jupybox:test-owner"
    assert "UP" in link["flags"]
    (addr,) = ip(inside, "-4", "addr", "show", "jbxt-br0")
    assert [(a["local"], a["prefixlen"]) for a in addr["addr_info"]] == [("10.213.7.1", 24)]
    # a second ensure changes nothing and says so; the same address is not added twice
    assert bridge.ensure("jbxt-br0", "10.213.7.1", 24, "02:42:0a:d5:07:01", alias="jupybox:test-owner") is False
    (addr,) = ip(inside, "-4", "addr", "show", "jbxt-br0")
    assert len(addr["addr_info"]) == 1
    assert bridge.aliases() == {"jbxt-br0": "jupybox:test-owner"}


def test_ports_are_found_put_back_and_deleted(inside):
    bridge.ensure("jbxt-br1", "10.213.8.1", 24, "02:42:0a:d5:08:01")
    for n in ("jbxt-v1", "jbxt-v2"):
        subprocess.run(["ip", "-n", inside, "link", "add", n, "type", "veth", "peer", "name", n + "p"], check=True)
    subprocess.run(["ip", "-n", inside, "link", "set", "jbxt-v1", "master", "jbxt-br1"], check=True)
    assert bridge.ports_of({"jbxt-br1"}) == {"jbxt-v1": "jbxt-br1"}
    assert bridge.ports_of({"nothing"}) == {}
    # the bridge deleted under a running container: made again, its veths put back on it
    bridge.delete("jbxt-br1")
    bridge.delete("jbxt-br1")  # already gone: nothing to do, no error
    assert bridge.ensure("jbxt-br1", "10.213.8.1", 24, "02:42:0a:d5:08:01", ports=["jbxt-v1", "jbxt-gone"]) is True
    (v1,) = ip(inside, "link", "show", "jbxt-v1")
    assert v1["master"] == "jbxt-br1"
    assert bridge.delete_links(["jbxt-v1", "jbxt-v2", "jbxt-never"]) == ["jbxt-v1", "jbxt-v2"]
    assert [ln["ifname"] for ln in ip(inside, "link", "show")] == ["lo", "jbxt-br1"]


def test_links_lists_every_link_with_its_index_and_master(inside):
    with netlink.Rtnl() as rt:
        for i in range(40):  # more than one page of dump output
            rt.add_bridge(f"jbxt-many{i}", bytes([2, 0x42, 0, 0, 0, i + 1]))
        mine = {ln["name"]: ln for ln in rt.links()}
    theirs = {ln["ifname"]: ln["ifindex"] for ln in ip(inside, "link", "show")}
    assert {n: ln["index"] for n, ln in mine.items()} == theirs
    assert all(ln["master"] == 0 and ln["alias"] == "" for ln in mine.values())


def test_errors_carry_the_errno_and_say_what_was_asked(inside):
    with netlink.Rtnl() as rt:
        rt.add_bridge("jbxt-dup", b"\x02\x42\0\0\0\x09")
        with pytest.raises(OSError) as e:
            rt.add_bridge("jbxt-dup", b"\x02\x42\0\0\0\x09")
        assert e.value.errno == 17 and "creating bridge jbxt-dup" in str(e.value)
        assert rt.delete("jbxt-absent") is False
    with pytest.raises(Exception, match="not a MAC address"):
        bridge.ensure("jbxt-bad", "10.213.9.1", 24, "02:42:zz")


def test_attributes_from_a_truncated_or_lying_message_are_dropped_not_overread():
    good = netlink._attr(netlink.IFLA_IFNAME, b"eth0\0")
    assert netlink._attrs(good, 0) == {netlink.IFLA_IFNAME: b"eth0\0"}
    lying = struct.pack("=HH", 200, netlink.IFLA_IFNAME) + b"abc\0"  # says 200 bytes, has 8
    assert netlink._attrs(good + lying, 0) == {netlink.IFLA_IFNAME: b"eth0\0"}
    zero = struct.pack("=HH", 0, 1) + b"\0" * 8  # a zero length would loop forever
    assert netlink._attrs(zero, 0) == {}
    assert netlink._cstr(b"br0\0junk") == "br0"


def test_the_service_and_the_cli_never_import_a_netlink_library():
    # the service lives as long as any container: ~25 MB of pyroute2 would stay in it
    code = ("import sys, jupybox.service.server, jupybox.network.bridge, jupybox.network.ownership; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'asyncio', 'ssl')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
