"""compose build, push, pull against a registry started on loopback for the test (no containers
run: no network namespace needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jupybox.testing import import_image

pytestmark = [pytest.mark.root]


def compose(cwd, root, *args):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), "compose", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def jb(root, *args):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120)


def test_build_push_pull(tmp_path, jupybox_root, busybox_tar, registry):
    import_image(jupybox_root, busybox_tar, "busybox:latest")
    ref = f"{registry.host}/shop/web:1"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:latest\nARG GREETING\n"
                                                 "RUN echo \"$GREETING\" > /greeting\n")
    (tmp_path / "compose.yaml").write_text(f"services:\n  web:\n    image: {ref}\n    build:\n      context: app\n"
                                           "      args: {GREETING: hello}\n  db:\n    image: busybox:latest\n")
    built = compose(tmp_path, jupybox_root, "build")
    assert built.returncode == 0, built.stderr
    assert "Service web  Built" in built.stderr and "db" not in built.stderr  # nothing to build for db
    pushed = compose(tmp_path, jupybox_root, "push", "web")
    assert pushed.returncode == 0, pushed.stderr
    assert jb(jupybox_root, "rmi", ref).returncode == 0
    pulled = compose(tmp_path, jupybox_root, "pull", "web")
    assert pulled.returncode == 0, pulled.stderr
    assert f"Image {ref}  Pulled" in pulled.stderr
    out = jb(jupybox_root, "run", "--rm", ref, "cat", "/greeting")
    assert out.stdout == "hello\n", out.stderr
