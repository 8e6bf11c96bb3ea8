"""End to end: real projects up and down in a network namespace of the test's own.

busybox's httpd is the web service, a Debian image with redis-server (mmdebstrap, cached) the
cache; services reach each other by name, a published port answers on the namespace's loopback,
another ``up`` finds the project by its labels, and ``down -v`` leaves no container, network,
volume, cgroup, mount or bridge."""

from __future__ import annotations

import json
import time

import pytest

from jupybox.testing import import_image
from jupybox.testing.leaks import cgroups, mounts

pytestmark = [pytest.mark.root, pytest.mark.slow]

APP = """\
name: shop
services:
  web:
    image: busybox:latest
    command: httpd -f -p 8080 -h /www
    volumes: ["./www:/www:ro"]
    ports: ["18080:8080"]
    networks:
      default:
        aliases: [shopfront]
    depends_on: [cache]
  cache:
    image: redis:bookworm
    command: redis-server --protected-mode no --save "" --appendonly no
    volumes: ["cache-data:/data"]
  worker:
    image: redis:bookworm
    command: sleep 3600
    environment:
      CACHE: cache
    depends_on: [web, cache]
volumes:
  cache-data:
"""


def _wait(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@pytest.fixture
def shop(compose, redis_tar):
    import_image(compose.root, redis_tar, "redis:bookworm")
    compose.write("compose.yaml", APP)
    compose.write("www/index.html", "hello from the shop\n")
    return compose


def test_up_reach_by_name_published_port_and_down_leaves_nothing(shop):
    links_before = shop.links()
    mounts_before = mounts([shop.root])
    cgroups_before = cgroups()
    up = shop("up", "-d")
    assert "Container shop-worker-1  Started" in up.stderr
    ps = json.loads(shop("ps", "--format", "json").stdout)
    assert sorted((r["Service"], r["State"]) for r in ps) == [("cache", "running"), ("web", "running"),
                                                             ("worker", "running")]
    # the published port answers on the namespace's loopback
    assert shop.fetch("http://127.0.0.1:18080/") == "hello from the shop\n"
    # services reach each other by service name and alias
    ping = _wait(lambda: shop("exec", "worker", "redis-cli", "-h", "cache", "ping", check=False).stdout.strip()
                 == "PONG")
    assert ping
    assert shop("exec", "worker", "sh", "-c", "redis-cli -h $CACHE set k v").stdout.strip() == "OK"
    assert shop("exec", "worker", "redis-cli", "-h", "cache", "get", "k").stdout.strip() == "v"
    web = shop("exec", "web", "wget", "-q", "-O-", "http://shopfront:8080/", check=False)
    assert web.stdout == "hello from the shop\n", web.stderr
    # labels: what another up, ps and down go by
    info = json.loads(shop.jb("inspect", "shop-web-1").stdout)[0]
    labels = info["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == "shop" and labels["com.docker.compose.service"] == "web"
    net = json.loads(shop.jb("network", "inspect", "shop_default").stdout)[0]
    assert net["Labels"]["com.docker.compose.project"] == "shop"
    assert "shop_default" in shop.networks() and "shop_cache-data" in shop.volumes()

    shop("down", "-v")
    assert shop.containers() == []
    assert shop.networks() == [] and shop.volumes() == []
    assert _wait(lambda: shop.links() == links_before, 5), shop.links()
    assert mounts([shop.root]) - mounts_before == set()
    assert _wait(lambda: cgroups() - cgroups_before == set(), 5), cgroups() - cgroups_before


def test_another_up_finds_the_project_and_recreates_only_what_changed(shop):
    shop("up", "-d")
    ids = {r["Service"]: r["ID"] for r in json.loads(shop("ps", "--format", "json").stdout)}
    again = shop("up", "-d")
    assert "Created" not in again.stderr and "Container shop-web-1  Running" in again.stderr
    assert {r["Service"]: r["ID"] for r in json.loads(shop("ps", "--format", "json").stdout)} == ids
    shop.write("compose.yaml", APP.replace("command: sleep 3600", "command: sleep 3601"))
    changed = shop("up", "-d")
    assert "Container shop-worker-1  Recreated" in changed.stderr
    now = {r["Service"]: r["ID"] for r in json.loads(shop("ps", "--format", "json").stdout)}
    assert now["web"] == ids["web"] and now["cache"] == ids["cache"] and now["worker"] != ids["worker"]
    # stop, start, restart keep the containers
    shop("stop")
    assert json.loads(shop("ps", "--format", "json").stdout) == []
    assert {r["State"] for r in json.loads(shop("ps", "-a", "--format", "json").stdout)} == {"exited"}
    shop("start")
    shop("restart", "web")
    assert {r["Service"]: r["ID"] for r in json.loads(shop("ps", "--format", "json").stdout)} == now
    assert shop.fetch("http://127.0.0.1:18080/") == "hello from the shop\n"
    # without its file, -p NAME still finds the project by its labels
    (shop.dir / "compose.yaml").rename(shop.dir / "elsewhere.yaml")
    assert len(json.loads(shop("-p", "shop", "ps", "--format", "json").stdout)) == 3
    shop("-p", "shop", "down")
    assert shop.containers() == [] and shop.networks() == []
    assert shop.volumes() == ["shop_cache-data"]  # named volumes go only with -v and the file that names them


def test_run_logs_top_images_config(shop):
    shop("up", "-d", "cache")
    assert sorted(r["Service"] for r in json.loads(shop("ps", "--format", "json").stdout)) == ["cache"]
    run = shop("run", "--rm", "worker", "redis-cli", "-h", "cache", "ping")
    assert run.stdout.strip() == "PONG"
    # its dependencies were brought up (web too), the one-off container is gone
    names = [json.loads(line)["Names"] for line in shop.jb("ps", "-a", "--format", "json").stdout.splitlines()]
    assert sorted(names) == ["shop-cache-1", "shop-web-1"]
    assert shop("run", "--no-deps", "--rm", "worker", "sh", "-c", "exit 3", check=False).returncode == 3
    logs = shop("logs", "--no-color", "cache").stdout
    assert "shop-cache-1 | " in logs and "Ready to accept connections" in logs
    top = shop("top", "cache").stdout
    assert "redis-server" in top
    images = shop("images").stdout
    assert "redis" in images and "bookworm" in images
    shop("down", "-v")


@pytest.mark.parametrize("text,expect", [
    ("services:\n  web:\n    image: busybox:latest\n    bogus: 1\n",
     "compose.yaml:4: services.web.bogus: additional property 'bogus' is not allowed"),
    ("services:\n  a:\n    image: busybox:latest\n    depends_on: [b]\n  b:\n    image: busybox:latest\n"
     "    depends_on: [a]\n", "compose.yaml:4: services.a.depends_on.b: dependency cycle detected: a -> b -> a"),
    ("services:\n  web:\n    image: busybox:${TAG:?TAG is required}\n",
     "compose.yaml:3: services.web.image: required variable TAG is missing a value: TAG is required"),
    ("services:\n  web:\n    image: busybox:latest\n    command: sleep 60\n    volumes: [v:/v]\n"
     "    ports:\n      - 18181:80\nvolumes: {v: {}}\n",
     "compose.yaml:7: services.web.ports[0]: Bind for 0.0.0.0:18181 failed: port is already allocated"),
])
def test_bad_projects_start_nothing(compose, text, expect):
    compose.write("compose.yaml", text)
    holder = compose.sh("busybox nc -l -p 18181 >/dev/null 2>&1 & echo $!")  # a host process on the port
    try:
        _wait(lambda: compose.sh("busybox netstat -ltn").stdout.count(":18181") > 0, 5)
        proc = compose("up", "-d", check=False)
    finally:
        compose.sh(f"kill {holder.stdout.strip()}")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"jupybox: {expect}"] or \
        proc.stderr.strip().splitlines()[-1].startswith(f"jupybox: {expect}"), proc.stderr
    assert compose.containers() == [] and compose.networks() == [] and compose.volumes() == []


def test_build_and_down_rmi(compose):
    compose.write("app/Dockerfile", "FROM busybox:latest\nCOPY index.html /www/index.html\n"
                                    "CMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n")
    compose.write("app/index.html", "built\n")
    compose.write("compose.yaml", "name: b\nservices:\n  web:\n    build: ./app\n    ports: ['18082:80']\n")
    compose("up", "-d")
    assert compose.fetch("http://127.0.0.1:18082/") == "built\n"
    assert "b-web" in compose.jb("images").stdout
    compose("down", "--rmi", "local")
    assert "b-web" not in compose.jb("images").stdout
    assert compose.containers() == [] and compose.networks() == []
