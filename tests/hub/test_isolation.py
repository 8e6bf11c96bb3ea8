"""What a user's server can reach: the hub's API and the proxy, not another user's server, not the
hub's database (a TCP server of the host), not anything else of the host. Then, with the spawner's
nftables tables removed, the same probes get through: the tables are what holds them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jupybox.hub import firewall

pytestmark = [pytest.mark.root, pytest.mark.slow]

PROBE = """
import json, socket, urllib.error, urllib.request
def tcp(host, port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); return "open"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return e.strerror
    finally:
        s.close()
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return type(e).__name__
print(json.dumps({
    "hub_api": get("http://GW:8081/hub/api"),
    "via_proxy": get("http://GW:8000/user/bob/api/status"),
    "bob": tcp("BOB", 8888),
    "database": tcp("GW", 5432),
    "hub_db_file": __import__("os").path.exists("DBFILE"),
}))
"""

DATABASE = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5432)); s.listen(8); print("listening", flush=True)
while True:
    s.accept()[0].close()
"""


def test_a_server_reaches_the_hub_and_the_proxy_only(hubs):
    hub = hubs.start("c.JupyboxSpawner.reachable_host_ports = [8000]\n", proxy_ip="0.0.0.0")
    db = hubs.ns.popen([sys.executable, "-c", DATABASE], stdout=subprocess.PIPE, text=True)
    try:
        assert db.stdout.readline().strip() == "listening"
        for user in ("alice", "bob"):
            hub.spawn(user)
        for user in ("alice", "bob"):
            hub.wait_ready(user)
        net = json.loads(hubs.jb("network", "inspect", "jupyterhub").stdout)[0]
        gateway = net["IPAM"]["Config"][0]["Gateway"]
        bob = hubs.inspect("jupyterhub-bob")["NetworkSettings"]["Networks"]["jupyterhub"]["IPAddress"]
        probe = (PROBE.replace("GW", gateway).replace("BOB", bob)
                 .replace("DBFILE", str(hub.work / "jupyterhub.sqlite")))

        seen = json.loads(hubs.exec_python("jupyterhub-alice", probe).stdout)
        assert seen == {"hub_api": 200, "via_proxy": 403, "bob": "timeout", "database": "timeout",
                        "hub_db_file": False}
        assert hub.get("/user/bob/api/status")[0] == 200  # the proxy itself reaches bob

        hubs.ns.call(firewall.remove, str(hubs.root), "jupyterhub")  # the control: without the tables
        seen = json.loads(hubs.exec_python("jupyterhub-alice", probe).stdout)
        assert (seen["bob"], seen["database"]) == ("open", "open")
    finally:
        db.kill()
        db.wait()
