"""The mode is tried, not guessed: root here, rootless for a user, fallback when forced or forbidden."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jupybox.runtime import mode


@pytest.mark.root
def test_root_here(tmp_path):
    m = mode.detect(str(tmp_path), refresh=True)
    assert m.name == mode.ROOT and m.isolated
    mode.reset()


def test_forced_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYBOX_ISOLATION", "none")
    m = mode.detect(str(tmp_path), refresh=True)
    assert m.name == mode.FALLBACK and not m.isolated and "JUPYBOX_ISOLATION" in m.reason
    assert m.to_dict()["isolated"] is False
    mode.reset()


@pytest.mark.root
def test_probe_reports_what_it_tried(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jupybox.linux.probe", str(tmp_path)], capture_output=True,
                         text=True, check=True)
    got = json.loads(out.stdout)
    assert got == {"euid": 0, "namespaces": "", "overlay": ""}
    assert os.listdir(tmp_path) == []  # the scratch overlay is gone


def test_kernel_version_parse(monkeypatch):
    monkeypatch.setattr(mode.platform, "release", lambda: "5.10.0-21-amd64")
    assert not mode.kernel_at_least(5, 11) and mode.kernel_at_least(5, 10)
    monkeypatch.setattr(mode.platform, "release", lambda: "6.18.44-fc")
    assert mode.kernel_at_least(5, 11)


def test_a_jupyterhub_server_says_why_no_container_runs(tmp_path):
    """A server started by jupybox.hub has JUPYBOX_NO_SERVICE (the spawner's reason): the mode is the
    fallback with that reason, and `run` refuses in one line that gives it (125)."""
    from jupybox.hub.spawner import NO_SERVICE

    env = dict(os.environ, JUPYBOX_NO_SERVICE=NO_SERVICE)
    probe = subprocess.run([sys.executable, "-c", "from jupybox.runtime import mode; m = mode.detect(); "
                            "print(m.name); print(m.reason)"], env=dict(env, JUPYBOX_ROOT=str(tmp_path / "s")),
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.splitlines() == [mode.FALLBACK, NO_SERVICE], probe.stderr
    r = subprocess.run([sys.executable, "-m", "jupybox", "--root", str(tmp_path / "s"), "run", "--rm", "host",
                        "true"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 125 and r.stderr.splitlines() == [f"jupybox: containers cannot run here: {NO_SERVICE}; "
                                                             "`jupybox run --no-isolation` runs the command as a "
                                                             "plain process, without isolation"], r.stderr
