"""The plan of ``up`` (pure data, no containers) and a service's container options."""

from __future__ import annotations

import pytest

from jupybox.compose import convert, load, plan, support
from jupybox.compose.errors import ComposeError

PROJECT = """\
name: shop
services:
  web:
    image: busybox
    ports: ["8080:80"]
    depends_on:
      api: {condition: service_healthy}
    networks:
      front: {aliases: [www]}
      back: {priority: 10}
  api:
    image: app:1
    depends_on:
      db: {condition: service_started}
      migrate: {condition: service_completed_successfully}
    healthcheck: {test: wget -q localhost, interval: 2s, timeout: 1500ms, retries: 4, start_period: 1m}
    networks: [back]
    deploy:
      replicas: 2
      resources: {limits: {cpus: "0.5", memory: 64M, pids: 50}}
      restart_policy: {condition: on-failure, max_attempts: 3}
  migrate:
    image: app:1
    networks: [back]
  db:
    image: redis
    volumes: ["data:/data", "/tmp/x:/x:ro", {type: tmpfs, target: /t, tmpfs: {size: 1m}}]
    restart: unless-stopped
    networks: [back]
    stop_grace_period: 3s
networks: {front: {}, back: {}}
volumes: {data: {}}
"""


@pytest.fixture
def project(tmp_path):
    return load(text=PROJECT, cwd=str(tmp_path), environ={})


def kinds(steps):
    return [str(s) for s in steps]


def test_fresh_up(project):
    steps = plan.make(project, plan.Snapshot(images={"busybox"}))
    assert kinds(steps) == [
        "pull db", "pull migrate",  # app:1 once for migrate and api; busybox is present
        "network back", "network front", "volume data",
        "create db #1", "create migrate #1", "create api #1", "create api #2", "create web #1",
        "start db #1", "start migrate #1",
        "wait api <- db service_started", "wait api <- migrate service_completed_successfully",
        "start api #1", "start api #2",
        "wait web <- api service_healthy", "start web #1"]
    assert [s for s in kinds(plan.make(project, plan.Snapshot(), start=False)) if s.startswith(("start", "wait"))] == []


def test_another_up_keeps_recreates_and_scales(project):
    h = {s: convert.config_hash(project, s) for s in project.services}
    snap = plan.Snapshot(images={"busybox", "app:1", "redis"}, networks={"shop_back", "shop_front"},
                         volumes={"shop_data"}, containers=[
                             plan.Existing("a", "shop-db-1", "db", 1, h["db"], running=True),
                             plan.Existing("b", "shop-migrate-1", "migrate", 1, h["migrate"], running=False),
                             plan.Existing("c", "shop-api-1", "api", 1, "stale", running=True),
                             plan.Existing("d", "shop-api-3", "api", 3, h["api"], running=True),
                             plan.Existing("e", "shop-gone-1", "gone", 1, "x", running=True)])
    steps = kinds(plan.make(project, snap))
    assert not [s for s in steps if s.startswith(("pull", "create db", "create migrate"))]
    assert "recreate api #1" in steps and "create api #2" in steps and "remove api #3" in steps
    assert "start db #1" in steps and "start migrate #1" in steps  # kept: started or said running
    assert [e.name for e in plan.orphans(project, snap)] == ["shop-gone-1"]
    assert "recreate db #1" in kinds(plan.make(project, snap, force_recreate=True))
    assert "recreate api #1" not in kinds(plan.make(project, snap, no_recreate=True))


def test_selected_services_bring_their_dependencies(project):
    steps = kinds(plan.make(project, plan.Snapshot(images={"busybox", "app:1", "redis"}), ["api"]))
    assert [s for s in steps if s.startswith("create")] == ["create db #1", "create migrate #1", "create api #1",
                                                           "create api #2"]
    assert "network front" not in steps


def test_container_options(project):
    accepts = lambda option, value: True  # noqa: E731
    image, command, opts, connect = convert.create_options(project, "web", 1, accepts)
    assert image == "busybox" and command is None
    assert opts["name"] == "shop-web-1"
    assert opts["network"] == "shop_back" and opts["network_aliases"] == ["web"]  # priority 10 first
    assert connect == [("shop_front", ["web", "www"])]
    assert opts["ports"] == [{"host_ip": "", "host_port": "8080", "container_port": 80, "protocol": "tcp"}]
    labels = opts["labels"]
    assert labels[convert.PROJECT] == "shop" and labels[convert.SERVICE] == "web" and labels[convert.NUMBER] == "1"
    assert labels[convert.CONFIG_HASH] == convert.config_hash(project, "web")
    _, _, api, _ = convert.create_options(project, "api", 2, accepts)
    assert (api["name"], api["memory"], api["cpus"], api["pids_limit"]) == ("shop-api-2", 64 << 20, 0.5, 50)
    assert api["restart"] == "on-failure:3"
    assert api["healthcheck"] == {"test": ["CMD-SHELL", "wget -q localhost"], "interval": 2.0, "timeout": 1.5,
                                  "start_period": 60.0, "retries": 4}
    _, _, db, _ = convert.create_options(project, "db", 1, lambda option, value: option != "restart")
    assert "restart" not in db  # what the runtime does not take is left out
    mounts = [(m.type, m.source, m.destination, m.readonly, m.options) for m in db["volumes"]]
    assert mounts == [("volume", "shop_data", "/data", False, []), ("bind", "/tmp/x", "/x", True, []),
                      ("tmpfs", "", "/t", False, [f"size={1 << 20}", "mode=1777"])]
    assert convert.stop_grace_seconds(project.services["db"]) == 3.0


@pytest.mark.parametrize("extra,where", [
    ("    devices: [/dev/fuse]\n", "<cell>:5: services.web.devices: 'devices' is not supported by jupybox"),
    ("    network_mode: service:db\n", "<cell>:5: services.web.network_mode: network_mode 'service:db'"),
    ("    restart: sometimes\n", "<cell>:5: services.web.restart: invalid restart policy 'sometimes'"),
    ("    ports: ['[::1]:80:80']\n", "<cell>:5: services.web.ports[0]: an IPv6 host address is not supported"),
])
def test_what_jupybox_cannot_do_is_refused_with_its_line(tmp_path, extra, where):
    text = "services:\n  db: {image: redis}\n  web:\n    image: busybox\n" + extra
    project = load(text=text, cwd=str(tmp_path), environ={})
    with pytest.raises(ComposeError) as e:
        support.check(project, ["web"])
    assert str(e.value).startswith(where)


@pytest.mark.parametrize("networks,volumes,where", [
    ("  n: {internal: true}\n", "", "<cell>:9: networks.n.internal: 'networks.n.internal' is not supported"),
    ("  n: {driver: overlay}\n", "", "<cell>:9: networks.n.driver: network driver 'overlay' is not supported"),
    ("  n: {ipam: {config: [{subnet: 'fd00::/64'}]}}\n", "", "<cell>:9: networks.n.ipam: this ipam configuration"),
    ("  n: {}\n", "  v: {driver: nfs}\n", "<cell>:11: volumes.v.driver: volume driver 'nfs' is not supported"),
])
def test_networks_and_volumes_jupybox_cannot_make_are_refused(tmp_path, networks, volumes, where):
    text = ("services:\n  web:\n    image: busybox\n    networks: [n]\n    volumes: ['v:/v']\n  other:\n"
            "    image: busybox\nnetworks:\n" + networks + "volumes:\n" + (volumes or "  v: {}\n"))
    project = load(text=text, cwd=str(tmp_path), environ={})
    support.check(project, ["other"])  # what a service does not use is not its problem
    with pytest.raises(ComposeError) as e:
        support.check(project, ["web"])
    assert str(e.value).startswith(where)
