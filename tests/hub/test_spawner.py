"""JupyboxSpawner under a real JupyterHub: limits, home volume, state across a hub restart, poll,
profiles, concurrent spawns, and nothing left after a stop."""

from __future__ import annotations

import concurrent.futures
import json

import pytest

from jupybox.testing.leaks import cgroups

from .conftest import netns_inode, netns_holders

pytestmark = [pytest.mark.root, pytest.mark.slow]

LIMITS = """
c.Spawner.mem_limit = "256M"
c.Spawner.cpu_limit = 0.5
c.Spawner.cpu_guarantee = 0.25
c.JupyboxSpawner.pids_limit = 200
"""

READ_LIMITS = """
import os, json
def first(*paths):
    for p in paths:
        if os.path.exists(p):
            return open(p).read().strip()
print(json.dumps({
    "memory": first("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "pids": first("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "api_url": os.environ["JUPYTERHUB_API_URL"],
    "no_service": os.environ.get("JUPYBOX_NO_SERVICE", ""),
    "home": os.environ["HOME"], "cwd": os.getcwd(), "uid": os.getuid(),
    "store_visible": os.path.exists(STORE),
}))
"""


def test_a_server_runs_limited_in_its_container_and_its_stop_leaves_nothing_but_the_home(hubs):
    hub = hubs.start(LIMITS)
    assert hub.spawn("alice") in (201, 202)
    hub.wait_ready("alice")
    status, body = hub.get("/user/alice/api/status")  # through the proxy, to the container
    assert status == 200 and b"kernels" in body

    info = hubs.inspect("jupyterhub-alice")
    host = info["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["CpuShares"], host["PidsLimit"]) == (256 << 20, 5 * 10**8, 256, 200)
    assert info["Config"]["Labels"]["org.jupyter.hub.user"] == "alice"
    assert [(m["Name"], m["Destination"]) for m in info["Mounts"] if m["Type"] == "volume"] == [
        ("jupyterhub-user-alice", "/home/jovyan")]
    gateway = json.loads(hubs.jb("network", "inspect", "jupyterhub").stdout)[0]["IPAM"]["Config"][0]["Gateway"]

    seen = json.loads(hubs.exec_python("jupyterhub-alice", READ_LIMITS.replace("STORE", repr(str(hubs.root)))).stdout)
    assert seen["memory"] == str(256 << 20) and seen["pids"] == "200"
    assert seen["api_url"] == f"http://{gateway}:8081/hub/api"  # the hub, as the server reaches it
    assert "%%container is not available" in seen["no_service"]
    assert not seen["store_visible"]
    assert seen["home"] == seen["cwd"] == "/home/jovyan"
    hubs.exec_python("jupyterhub-alice", "open('/home/jovyan/kept.txt', 'w').write('still here')")
    cid = info["Id"]
    namespace = netns_inode(info["State"]["Pid"])

    hub.stop_server("alice")
    assert hubs.container_names() == []
    # no bridge, the veth down, nothing holding the server's network namespace (see the ten users)
    assert hubs.eventually(lambda: not netns_holders({namespace})), netns_holders({namespace})
    assert hubs.eventually(lambda: not hubs.unplugged([cid])), hubs.unplugged([cid])
    assert not [t for t in hubs.nft_tables() if "jupyboxhub_" in t]
    assert hubs.eventually(lambda: not [c for c in cgroups() if cid in c]), "the server's cgroup is left"
    assert "jupyterhub-user-alice" in hubs.jb("volume", "ls", "-q").stdout.split()

    hub.spawn("alice")  # a new container, the same home
    hub.wait_ready("alice")
    assert hubs.inspect("jupyterhub-alice")["Id"] != cid
    out = hubs.exec_python("jupyterhub-alice", "print(open('/home/jovyan/kept.txt').read())")
    assert out.stdout.strip() == "still here"


def test_running_servers_are_found_again_after_a_hub_restart_not_restarted(hubs):
    hub = hubs.start()
    hub.spawn("alice")
    hub.wait_ready("alice")
    before = hubs.inspect("jupyterhub-alice")
    hub.stop()  # cleanup_servers is off: the server stays
    assert hubs.inspect("jupyterhub-alice")["State"]["Running"]

    hub.start()  # a new hub process, the same database
    server = hub.wait_ready("alice")
    after = hubs.inspect("jupyterhub-alice")
    assert after["Id"] == before["Id"] and after["State"]["Pid"] == before["State"]["Pid"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert server["state"]["container_id"] == before["Id"]
    assert hub.get("/user/alice/api/status")[0] == 200  # the new proxy routes to it
    hub.stop_server("alice")
    assert hubs.container_names() == []


def test_a_server_that_dies_is_seen_by_poll(hubs):
    hub = hubs.start("c.Spawner.poll_interval = 1\n")
    hub.spawn("alice")
    hub.wait_ready("alice")
    hubs.jb("kill", "jupyterhub-alice")
    assert hubs.eventually(lambda: hub.server("alice") is None, timeout=60), "the hub did not notice"
    hub.spawn("alice")  # and a new start takes the dead one's place
    hub.wait_ready("alice")
    assert hubs.inspect("jupyterhub-alice")["State"]["Running"]


def test_profiles_choose_image_and_limits_and_an_unknown_one_starts_nothing(hubs):
    hub = hubs.start("""
        c.JupyboxSpawner.profiles = [
            {"display_name": "Default", "image": "host", "default": True},
            {"display_name": "Small", "slug": "small", "image": "host", "mem_limit": "200M", "pids_limit": 64},
        ]
        """)
    hub.api("POST", "/users", {"usernames": ["alice", "bob"]})
    status, _ = hub.api("POST", "/users/alice/server", {"profile": "small"})
    assert status in (201, 202)
    hub.wait_ready("alice")
    host = hubs.inspect("jupyterhub-alice")["HostConfig"]
    assert (host["Memory"], host["PidsLimit"]) == (200 << 20, 64)

    status, _ = hub.api("POST", "/users/bob/server", {"profile": "huge"})
    assert status >= 400
    assert hub.server("bob") is None
    assert hubs.container_names() == ["jupyterhub-alice"]


# the servers of the ten: JupyterHub's single-user server without the extensions it would load for
# a browser (JupyterLab and its companions: ~40% of a server's start, ten at once on two CPUs)
BARE_SERVERS = """
c.Spawner.args.append("--ServerApp.jpserver_extensions=" + repr({name: False for name in (
    "jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook_shim")}))
c.Spawner.default_url = "/api/status"
"""


def test_ten_users_spawned_concurrently(hubs):
    hub = hubs.start("c.JupyboxSpawner.pids_limit = 300\nc.Spawner.mem_limit = '512M'\n" + BARE_SERVERS)
    users = [f"student{i}" for i in range(10)]
    hub.api("POST", "/users", {"usernames": users})
    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        statuses = list(pool.map(lambda u: hub.api("POST", f"/users/{u}/server", timeout=300)[0], users))
        assert all(s in (201, 202) for s in statuses), statuses
        list(pool.map(lambda u: hub.wait_ready(u, timeout=600), users))
        answers = list(pool.map(lambda u: hub.get(f"/user/{u}/api/status")[0], users))
    assert answers == [200] * 10
    infos = [hubs.inspect(f"jupyterhub-{u}") for u in users]
    assert len({i["NetworkSettings"]["Networks"]["jupyterhub"]["IPAddress"] for i in infos}) == 10
    ids = [i["Id"] for i in infos]
    namespaces = {netns_inode(i["State"]["Pid"]) for i in infos}
    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(hub.stop_server, users))
    assert hubs.container_names() == []
    # nothing keeps the servers' network namespaces: no process, descriptor or mount of them (the
    # kernel frees them, and the veths with them, when their last sockets are done: a socket still
    # sending its FIN into a downed veth retries for ~100 s, which this does not wait for)
    assert hubs.eventually(lambda: not netns_holders(namespaces)), netns_holders(namespaces)
    assert hubs.eventually(lambda: not hubs.unplugged(ids)), hubs.unplugged(ids)  # no bridge, veths down
    assert not [t for t in hubs.nft_tables() if "jupyboxhub_" in t]


def test_a_hub_listening_on_loopback_only_is_told_what_to_set(hubs):
    hub = hubs.start('c.JupyterHub.hub_ip = "127.0.0.1"\n')
    hub.api("POST", "/users", {"usernames": ["alice"]})
    status, _ = hub.api("POST", "/users/alice/server")
    assert status >= 400
    assert "c.JupyterHub.hub_ip = '0.0.0.0'" in hub.log_tail(20000)
    assert hubs.container_names() == []
