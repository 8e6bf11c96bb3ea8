"""Healthchecks and restart policies end to end. Both are the runtime's (the store's service,
issue 16): compose passes them on as the container options ``healthcheck`` and ``restart``, and
these tests run as soon as ``jupybox.run`` takes them (until then they are skipped, naming the
missing feature)."""

from __future__ import annotations

import json
import time

import pytest

from jupybox.testing import import_image

from .conftest import needs_runtime

pytestmark = [pytest.mark.root, pytest.mark.slow]

CHAIN = """\
name: chain
services:
  db:
    image: redis:bookworm
    command: redis-server --save "" --appendonly no
    healthcheck: {test: ["CMD", "redis-cli", "ping"], interval: 500ms, timeout: 2s, retries: 20}
  api:
    image: busybox:latest
    command: sh -c 'mkdir -p /w && echo ok > /w/health && exec httpd -f -p 8080 -h /w'
    healthcheck: {test: "wget -q -O- http://localhost:8080/health", interval: 500ms, retries: 20}
    depends_on:
      db: {condition: service_healthy}
  web:
    image: busybox:latest
    command: sleep 3600
    depends_on:
      api: {condition: service_healthy}
"""


@needs_runtime("healthcheck", {"test": ["CMD", "true"]}, "healthchecks")
def test_up_wait_follows_a_healthcheck_chain(compose, redis_tar):
    import_image(compose.root, redis_tar, "redis:bookworm")
    compose.write("compose.yaml", CHAIN)
    up = compose("up", "-d", "--wait")
    events = [line.strip() for line in up.stderr.splitlines()]
    assert events.index("Container chain-db-1  Healthy") < events.index("Container chain-api-1  Started")
    assert events.index("Container chain-api-1  Healthy") < events.index("Container chain-web-1  Started")
    rows = {r["Service"]: r for r in json.loads(compose("ps", "--format", "json").stdout)}
    assert rows["db"]["Health"] == "healthy" and rows["api"]["Health"] == "healthy"
    assert "(healthy)" in rows["db"]["Status"]
    compose("down", "-v")
    assert compose.containers() == []


@needs_runtime("healthcheck", {"test": ["CMD", "true"]}, "healthchecks")
def test_an_unhealthy_dependency_stops_the_up(compose):
    compose.write("compose.yaml", """\
        name: sick
        services:
          db:
            image: busybox:latest
            command: sleep 3600
            healthcheck: {test: ["CMD", "false"], interval: 200ms, retries: 2}
          app:
            image: busybox:latest
            command: sleep 3600
            depends_on: {db: {condition: service_healthy}}
        """)
    proc = compose("up", "-d", check=False)
    assert proc.returncode == 1
    assert "dependency failed to start: container sick-db-1 is unhealthy" in proc.stderr
    assert json.loads(compose.jb("inspect", "sick-app-1").stdout)[0]["State"]["Status"] == "created"
    compose("down")


@needs_runtime("restart", "on-failure:2", "restart policies")
def test_restart_on_failure_restarts_a_crashing_service_n_times(compose):
    compose.write("compose.yaml", """\
        name: crash
        services:
          bad:
            image: busybox:latest
            command: sh -c 'echo crashing; exit 3'
            restart: on-failure:2
        """)
    compose("up", "-d")
    deadline = time.monotonic() + 60
    while True:
        info = json.loads(compose.jb("inspect", "crash-bad-1").stdout)[0]
        if (info["State"]["Status"] == "exited" and not info["State"].get("Restarting")
                and info["RestartCount"] == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 3
    assert compose("logs", "--no-color", "bad").stdout.count("crashing") == 3
    compose("down")
    assert compose.containers() == []
