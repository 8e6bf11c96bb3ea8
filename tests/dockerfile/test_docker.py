"""A built image saved with ``jupybox save`` loads into a real Docker engine and runs there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    """``docker ...`` (text output) against a private dockerd, stopped at the end of the module."""
    from jupybox.testing.dockerd import DockerdUnavailable, private_dockerd

    try:
        with private_dockerd(tmp_path_factory.mktemp("dockerd"), text=True) as run:
            yield run
    except DockerdUnavailable as e:
        pytest.skip(str(e))


def test_built_image_runs_in_docker(bb, docker, tmp_path):
    bb.files({"app.sh": ("#!/bin/sh\necho \"$GREETING from $(pwd) as $(id -u): $(cat /data/built.txt)\"\n", 0o755),
              "conf/a.conf": "x=1\n"})
    img = bb.build("FROM busybox\n"
                   "ENV GREETING=hello-docker\n"
                   "RUN mkdir -p /data && echo built-by-jupybox > /data/built.txt && rm -rf /home/user\n"
                   "COPY app.sh /app/\n"
                   "COPY conf /etc/app/\n"
                   "WORKDIR /app\n"
                   "USER 1000\n"
                   "CMD [\"/app/app.sh\"]\n", tags=["jbx-built:1"])
    archive = tmp_path / "img.tar"
    r = subprocess.run([sys.executable, "-m", "jupybox", "--root", str(bb.root), "save", "-o", str(archive),
                        "jbx-built:1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = docker("load", "-i", archive)
    assert r.returncode == 0, r.stderr
    assert "Loaded image: jbx-built:1" in r.stdout
    inspect = json.loads(docker("image", "inspect", "jbx-built:1").stdout)[0]
    assert inspect["Id"] == img.id
    assert inspect["Config"]["Cmd"] == ["/app/app.sh"] and inspect["Config"]["WorkingDir"] == "/app"
    assert inspect["Config"]["User"] == "1000" and "GREETING=hello-docker" in inspect["Config"]["Env"]
    assert len(inspect["RootFS"]["Layers"]) == len(img.diff_ids)
    r = docker("run", "--rm", "--network", "none", "jbx-built:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hello-docker from /app as 1000: built-by-jupybox"
    r = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", "jbx-built:1", "-c",
               "ls /home; cat /etc/app/a.conf; test -e /etc/hosts && echo hosts-ok")
    assert r.stdout.split() == ["x=1", "hosts-ok"]  # /home/user deleted by a whiteout
    history = json.loads(docker("image", "inspect", "-f", "{{json .RootFS}}", "jbx-built:1").stdout)
    assert history["Layers"] == img.diff_ids
