"""Detached containers through the CLI: ps, logs, inspect, stop, start, exec, stats, rm, volumes (root only)."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.root]

BB = "busybox:latest"


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_detached_lifecycle(cli):
    r = cli("run", "-d", "--name", "life", "-m", "64m", BB, "sh", "-c", "echo started; echo oops >&2; sleep 60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    try:
        ps = cli("ps", "--format", "json")
        rows = [json.loads(line) for line in ps.stdout.splitlines()]
        assert any(row["Names"] == "life" and row["State"] == "running" for row in rows)
        assert wait_for(lambda: "started" in cli("logs", "life").stdout)
        logs = cli("logs", "life")
        assert logs.stdout == "started\n" and logs.stderr == "oops\n"

        info = json.loads(cli("inspect", "life").stdout)[0]
        assert info["State"]["Status"] == "running" and info["State"]["Pid"] > 0
        assert info["HostConfig"]["Memory"] == 64 << 20
        assert info["Name"] == "/life"

        ex = cli("exec", "life", "sh", "-c", "echo in-$(hostname); grep -E '^(CapEff|Seccomp):' /proc/self/status")
        assert ex.returncode == 0, ex.stderr
        assert ex.stdout.splitlines()[0] == f"in-{cid[:12]}"
        assert "00000000a80425fb" in ex.stdout and "Seccomp:\t2" in ex.stdout
        assert cli("exec", "life", "sh", "-c", "exit 7").returncode == 7
        assert cli("exec", "life", "nope").returncode == 127

        st = cli("stats", "--no-stream", "--format", "json", "life")
        row = json.loads(st.stdout.splitlines()[0])
        assert row["memory_limit"] == 64 << 20 and row["pids"] >= 2

        assert cli("rm", "life").returncode == 1  # running: refused
        t = time.monotonic()
        assert cli("stop", "-t", "1", "life").returncode == 0
        info = json.loads(cli("inspect", "life").stdout)[0]
        assert info["State"]["Status"] == "exited"
        assert info["State"]["ExitCode"] == 143  # sh got SIGTERM through the init
        assert time.monotonic() - t < 10
    finally:
        cli("rm", "-f", "life")
    assert cli("inspect", "life").returncode != 0


def test_start_resumes_with_the_write_layer(cli):
    r = cli("run", "--name", "keep", BB, "sh", "-c", "echo data >> /state; cat /state")
    assert r.returncode == 0 and r.stdout == "data\n"
    try:
        r = cli("start", "-a", "keep")
        assert r.returncode == 0 and r.stdout == "data\ndata\n"
        ps = cli("ps", "-a", "--format", "json")
        row = [json.loads(line) for line in ps.stdout.splitlines() if json.loads(line)["Names"] == "keep"][0]
        assert row["State"] == "exited" and row["ExitCode"] == 0
    finally:
        assert cli("rm", "keep").returncode == 0


def test_kill_with_signal_and_wait(cli):
    cli("run", "-d", "--name", "k1", BB, "sleep", "60")
    try:
        assert cli("kill", "-s", "USR1", "k1").returncode == 0
        r = cli("wait", "k1")
        assert r.stdout.strip() == str(128 + 10)
    finally:
        cli("rm", "-f", "k1")


def test_named_volume_outlives_containers(cli):
    assert cli("volume", "create", "vdata").returncode == 0
    try:
        assert cli("run", "--rm", "-v", "vdata:/data", BB, "sh", "-c", "echo 42 > /data/answer").returncode == 0
        r = cli("run", "--rm", "-v", "vdata:/data:ro", BB, "sh", "-c", "cat /data/answer; touch /data/x || echo ro")
        assert r.stdout.split() == ["42", "ro"]
        assert "vdata" in cli("volume", "ls").stdout
        info = json.loads(cli("volume", "inspect", "vdata").stdout)[0]
        assert info["Name"] == "vdata" and info["Mountpoint"].endswith("/vdata/_data")
        cli("run", "-d", "--name", "vuser", "-v", "vdata:/data", BB, "sleep", "60")
        r = cli("volume", "rm", "vdata")
        assert r.returncode != 0 and "in use" in r.stderr
        cli("rm", "-f", "vuser")
    finally:
        cli("rm", "-f", "vuser")
        assert cli("volume", "rm", "vdata").returncode == 0
    assert "vdata" not in cli("volume", "ls").stdout


def test_bind_mount(cli, tmp_path):
    (tmp_path / "in.txt").write_text("from host")
    r = cli("run", "--rm", "-v", f"{tmp_path}:/work", BB, "sh", "-c", "cat /work/in.txt; echo back > /work/out.txt")
    assert r.stdout == "from host"
    assert (tmp_path / "out.txt").read_text() == "back\n"


def test_prune_removes_stopped(cli):
    cli("run", "--name", "p1", BB, "true")
    assert "p1" in cli("ps", "-a").stdout
    r = cli("prune")
    assert r.returncode == 0
    assert "p1" not in cli("ps", "-a").stdout


def test_foreground_runs_are_logged(cli):
    r = cli("run", "--name", "fg", BB, "sh", "-c", "echo out; echo err >&2; exit 3")
    try:
        assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
        logs = cli("logs", "fg")
        assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    finally:
        cli("rm", "fg")


def test_inspect_format_templates(cli):
    cli("run", "--name", "tpl", BB, "true")
    try:
        r = cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{json .Config.Cmd}}", "tpl")
        assert r.stdout == 'exited 0 ["true"]\n'
        r = cli("inspect", "-f", "{{range .Mounts}}{{end}}", "tpl")
        assert r.returncode == 125 and "unsupported" in r.stderr
    finally:
        cli("rm", "tpl")
