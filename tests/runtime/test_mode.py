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
