"""Fixtures of the environment tests: a store with a Debian + pip base image, a loopback package
index of wheels fetched once from PyPI (``python -m jupybox.testing.prefetch``), kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from jupybox.testing import cache_dir, debian_tarball, import_image
from jupybox.testing.pipindex import ENV_INDEX, PackageIndex

JUPYBOX = [sys.executable, "-m", "jupybox"]
REPLY_TIMEOUT = 90  # bounds on waits; nothing asserts a duration


def wheels(name: str) -> Path:
    d = cache_dir() / name
    if not (d / ".done").exists():
        try:
            from jupybox.testing.pipindex import pip_wheels

            return pip_wheels(cache_dir(), name, ENV_INDEX[name])
        except Exception as e:  # noqa: BLE001 - no PyPI here: run the prefetch first
            pytest.skip(f"wheels for the test index are missing ({e}): run python -m jupybox.testing.prefetch")
    return d


@pytest.fixture(scope="module")
def env_root(tmp_path_factory):
    """A store with ``debian-pip`` (bookworm minbase + python3-pip); its service stopped at the end."""
    tar = debian_tarball(cache_dir(), include=("python3", "python3-pip"))
    if tar is None:
        pytest.skip("mmdebstrap is not installed")
    root = tmp_path_factory.mktemp("jbx-env")
    import_image(root, tar, "debian-pip:latest")
    yield root
    from jupybox.testing.leaks import cleanup_mounts_under, kill_processes_under, stop_services

    stop_services(root)
    kill_processes_under(root)
    cleanup_mounts_under(root)


@pytest.fixture
def index():
    with PackageIndex(wheels("env-index")) as idx:
        yield idx


def cli(root, *args, check=True, env=None, timeout=600) -> subprocess.CompletedProcess:
    """``jupybox --root ROOT ARGS`` in a subprocess, as a user types it."""
    p = subprocess.run(JUPYBOX + ["--root", str(root), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"jupybox {' '.join(map(str, args))}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def jpath(tmp_path_factory):
    """A private JUPYTER_PATH prefix: kernelspecs installed for these tests only."""
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    yield prefix
    mp.undo()


@contextmanager
def kernel(name: str, cwd=None):
    """A started kernel (jupyter_client's KernelManager) and ``run(code) -> (text, reply)``."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=name)
    km.start_kernel(cwd=str(cwd) if cwd else None)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=REPLY_TIMEOUT)

        def run(code: str):
            out: list[str] = []

            def hook(msg):
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    out.append("\n".join(msg["content"]["traceback"]))

            reply = kc.execute_interactive(code, timeout=REPLY_TIMEOUT * 2, output_hook=hook)
            return "".join(out), reply["content"]

        def usage() -> dict:
            msg = kc.session.msg("usage_request", {})
            kc.control_channel.send(msg)
            while True:
                reply = kc.control_channel.get_msg(timeout=REPLY_TIMEOUT)
                if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                    return reply["content"]

        def restart() -> None:
            """A restart (a fresh container), then wait until the new kernel answers."""
            km.restart_kernel(now=True)
            kc.wait_for_ready(timeout=REPLY_TIMEOUT)

        run.usage = usage
        run.restart = restart
        run.km = km
        yield run
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=False)
        else:
            km.cleanup_resources()


def image_files(root, ref: str, under: str) -> dict[str, str]:
    """{path: sha256 of the content (or link target)} of an image's files under ``under``."""
    import hashlib
    import stat

    from jupybox.dockerfile.context import ImageFS
    from jupybox.image.store import ImageStore

    store = ImageStore(root)
    fs = ImageFS(store.layer_dirs(store.resolve(ref)))
    out = {}

    def walk(rel):
        for name in fs.listdir(rel):
            p = f"{rel}/{name}"
            st = fs.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                walk(p)
            elif stat.S_ISLNK(st.st_mode):
                out[p] = "-> " + os.readlink(fs.host_path(p))
            else:
                with open(fs.host_path(p), "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()

    walk(under.strip("/"))
    return out


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
