"""The spawner's pieces without a hub: names, profiles and the form, limits, the hub's URL as a
server reaches it, the firewall's rules and who owns them."""

from __future__ import annotations

import pytest

from jupybox.hub import firewall, names, profiles

jupyterhub = pytest.importorskip("jupyterhub")


def test_names_are_escaped_as_dockerspawner_does_and_never_collide():
    from dockerspawner import DockerSpawner

    for user in ("alice", "Alice.B@x", "a-b", "a--b", "élève"):
        assert names.escape(user) == DockerSpawner._escape(user)
    assert names.expand("jupyterhub-{username}{servername}", "a", "b") == "jupyterhub-a--b"
    assert names.expand("jupyterhub-{username}{servername}", "a--b", "") == "jupyterhub-a-2d-2db"
    assert names.expand("jupyterhub-user-{username}", "Bob") == "jupyterhub-user--42ob"


def test_profiles_are_checked_chosen_and_shown():
    ps = profiles.check([{"display_name": "Python (host)", "image": "host"},
                         {"display_name": "Small <b>", "slug": "small", "image": "x:1", "mem_limit": "200M",
                          "default": True}])
    assert [p["slug"] for p in ps] == ["python-host", "small"]
    assert profiles.choose(ps, {})["slug"] == "small"
    assert profiles.choose(ps, {"profile": "python-host"})["image"] == "host"
    with pytest.raises(ValueError, match="no such profile: 'big'"):
        profiles.choose(ps, {"profile": "big"})
    form = profiles.form(ps)
    assert form.count('type="radio"') == 2 and 'value="small" checked' in form and "Small &lt;b&gt;" in form
    assert profiles.form(ps[:1]) == ""  # nothing to choose
    assert profiles.from_form({"profile": ["small"]}) == {"profile": "small"}
    for bad, why in (([{"image": "x"}], "display_name"), ([{"display_name": "a", "image": "x", "gpu": 1}], "gpu"),
                     ([{"display_name": "a", "image": "x"}, {"display_name": "A", "image": "y"}], "twice")):
        with pytest.raises(ValueError, match=why):
            profiles.check(bad)


def test_limits_map_the_spawner_traits():
    from jupybox.hub.spawner import JupyboxSpawner

    s = JupyboxSpawner(mem_limit="256M", cpu_limit=1.5, cpu_guarantee=0.25, pids_limit=100)
    assert s._limits({}) == {"memory": 256 << 20, "cpus": 1.5, "cpu_shares": 256, "pids_limit": 100}
    assert s._limits({"mem_limit": "1G", "pids_limit": 0}) == {"memory": 1 << 30, "cpus": 1.5, "cpu_shares": 256,
                                                               "pids_limit": None}
    assert JupyboxSpawner()._limits({}) == {"memory": None, "cpus": None, "cpu_shares": None, "pids_limit": 1024}


def test_the_hubs_url_is_rewritten_to_the_gateway():
    from jupybox.hub.spawner import _with_host

    assert _with_host("http://127.0.0.1:8081/hub/api", "172.18.0.1") == "http://172.18.0.1:8081/hub/api"
    assert (_with_host("http://vm:8081/hub/api/users/a/activity", "10.0.0.1")
            == "http://10.0.0.1:8081/hub/api/users/a/activity")


def test_the_firewall_matches_the_macs_jupybox_gives_the_subnet():
    text = firewall.render("t", 'a "quoted" owner', "jbx-1", "172.30.16.0/20", "172.30.16.1", [8081, 8000, 8081])
    assert "ether saddr & ff:ff:ff:ff:f0:00 == 02:42:ac:1e:10:00 drop" in text
    assert "ip daddr 172.30.16.0/20 drop" in text
    assert 'iifname "jbx-1" ip daddr 172.30.16.1 tcp dport { 8000, 8081 } accept' in text
    assert "comment \"a 'quoted' owner\"" in text
    assert firewall.table_name("/a", "n") != firewall.table_name("/a", "m") != firewall.table_name("/b", "n")


@pytest.mark.root
def test_the_firewall_removes_only_tables_whose_comment_says_they_are_its(tmp_path):
    from jupybox.hub.testing import Netns, missing
    from jupybox.network import nat

    if missing():
        pytest.skip(missing())
    net = {"name": "jupyterhub", "bridge": "jbx-x", "subnet": "172.30.0.0/16", "gateway": "172.30.0.1"}
    table = firewall.table_name(tmp_path, "jupyterhub")
    with Netns() as ns:
        ns.call(firewall.apply, tmp_path, net, [8081])
        assert ns.call(firewall.present, tmp_path, "jupyterhub") == ["bridge", "inet"]
        ns.call(firewall.remove, tmp_path, "jupyterhub")
        assert ns.call(firewall.present, tmp_path, "jupyterhub") == []
        # a table of the same name that someone else made (another comment) is left alone
        ns.call(nat.run, f'table inet {table} {{ comment "not the spawner\'s"; }}\n')
        ns.call(firewall.remove, tmp_path, "jupyterhub")
        assert table in ns.run(["nft", "list", "tables"]).stdout
