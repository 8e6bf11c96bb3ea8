"""Restart policies and healthchecks from the CLI, carried by the store's service (docker's
semantics; compose's use of them is in tests/compose/test_health_restart.py). Waits are for
states, with generous deadlines, never timed assertions."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from jupybox.testing import import_image
from jupybox.testing.leaks import stop_services

pytestmark = [pytest.mark.root]

BB = "busybox:latest"


@pytest.fixture
def jb(jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, BB)

    def run(*args, check=False):
        r = subprocess.run([sys.executable, "-m", "jupybox", "--root", str(jupybox_root), *map(str, args)],
                           capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, (args, r.stderr)
        return r

    run.root = jupybox_root
    yield run
    run("rm", "-f", *[c for c in run("ps", "-a", "-q").stdout.split()])
    stop_services(jupybox_root)


def inspect(jb, name) -> dict:
    return json.loads(jb("inspect", name, check=True).stdout)[0]


def until(what, deadline: float = 30.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {deadline} s: {what.__doc__ or what}")


def test_on_failure_n_restarts_n_times_then_stays_exited(jb):
    jb("run", "-d", "--name", "flaky", "--restart", "on-failure:2", BB, "sh", "-c", "exit 3", check=True)
    state = until(lambda: (lambda i: i if i["RestartCount"] == 2 and i["State"]["Status"] == "exited" else None)(
        inspect(jb, "flaky")))
    assert state["State"]["ExitCode"] == 3 and state["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                                                         "MaximumRetryCount": 2}
    assert len(jb("logs", "flaky").stdout.splitlines()) == 0
    assert inspect(jb, "flaky")["RestartCount"] == 2  # and no more


def test_always_restarts_even_success_and_stop_ends_it(jb):
    jb("run", "-d", "--name", "loop", "--restart", "always", BB, "sh", "-c", "echo ran; exit 0", check=True)
    until(lambda: inspect(jb, "loop")["RestartCount"] >= 3)
    assert jb("stop", "loop").returncode == 0
    stopped = inspect(jb, "loop")
    assert stopped["State"]["Status"] == "exited"
    count = stopped["RestartCount"]
    time.sleep(1.0)  # (the backoff is 0.1-0.8 s by now: a restart would have come)
    assert inspect(jb, "loop")["RestartCount"] == count and inspect(jb, "loop")["State"]["Status"] == "exited"
    assert jb("logs", "loop").stdout.count("ran") == count + 1


def test_unless_stopped_survives_a_restart_of_the_service_a_stopped_one_does_not(jb):
    jb("run", "-d", "--name", "keep", "--restart", "unless-stopped", BB, "sleep", "600", check=True)
    jb("run", "-d", "--name", "halted", "--restart", "unless-stopped", BB, "sleep", "600", check=True)
    assert jb("stop", "-t", "0", "halted").returncode == 0
    stop_services(jb.root)  # the service goes (a reboot, say): its containers with it
    until(lambda: inspect(jb, "keep")["State"]["Status"] == "running")  # the next service starts it again
    assert inspect(jb, "halted")["State"]["Status"] == "exited"
    ps = jb("ps").stdout
    assert "keep" in ps and "halted" not in ps


def test_health_cmd_from_the_cli_starting_healthy_unhealthy_and_five_probes_kept(jb):
    jb("run", "-d", "--name", "web", "--health-cmd", "test -e /tmp/ok", "--health-interval", "0.2s",
       "--health-retries", "2", "--health-timeout", "2s", BB, "sh", "-c", "sleep 1; touch /tmp/ok; sleep 600",
       check=True)
    assert inspect(jb, "web")["State"]["Health"]["Status"] == "starting"
    until(lambda: inspect(jb, "web")["State"]["Health"]["Status"] == "healthy")
    assert "(healthy)" in jb("ps").stdout
    assert jb("exec", "web", "rm", "/tmp/ok").returncode == 0
    until(lambda: inspect(jb, "web")["State"]["Health"]["Status"] == "unhealthy")
    health = inspect(jb, "web")["State"]["Health"]
    assert health["FailingStreak"] >= 2 and len(health["Log"]) == 5  # docker keeps the last five probes
    assert all({"Start", "End", "ExitCode", "Output"} <= set(p) for p in health["Log"])
    assert health["Log"][-1]["ExitCode"] == 1
    assert "(unhealthy)" in jb("ps").stdout


def test_an_images_healthcheck_is_used_and_no_healthcheck_turns_it_off(jb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nHEALTHCHECK --interval=1s CMD ["true"]\n')
    assert jb("build", "-q", "-t", "hc", str(ctx)).returncode == 0
    jb("run", "-d", "--name", "checked", "hc", "sleep", "600", check=True)
    jb("run", "-d", "--name", "unchecked", "--no-healthcheck", "hc", "sleep", "600", check=True)
    until(lambda: inspect(jb, "checked")["State"]["Health"]["Status"] == "healthy")
    assert inspect(jb, "unchecked")["State"].get("Health") is None
    assert "(healthy)" not in [line for line in jb("ps").stdout.splitlines() if "unchecked" in line][0]
