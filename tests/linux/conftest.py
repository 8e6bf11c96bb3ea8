"""Helpers for jupybox.linux tests: every check that changes process state runs in a forked child,
so the pytest process itself is never restricted (namespaces, caps, no_new_privs, seccomp)."""

from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import sys
import time
import traceback

import pytest

from jupybox.linux.syscalls import MNT_DETACH, umount2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _read_all(fd: int, deadline: float) -> bytes:
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("child did not answer in time")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def run_in_child(fn, *args, timeout: float = 30.0):
    """Run fn(*args) in a forked child and return its (pickled) result; re-raise its failure here."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            try:
                result = ("ok", fn(*args))
            except BaseException:
                result = ("err", traceback.format_exc())
            try:
                data = pickle.dumps(result)
            except Exception:
                data = pickle.dumps(("err", f"unpicklable result {result!r}"))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = _read_all(r, time.monotonic() + timeout)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("child timed out")
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        pytest.fail(f"child killed by signal {os.WTERMSIG(status)}")
    if not data:
        pytest.fail(f"child sent nothing (exit status {os.waitstatus_to_exitcode(status)})")
    kind, value = pickle.loads(data)
    if kind == "err":
        pytest.fail(f"child failed:\n{value}", pytrace=False)
    return value


def run_python(script: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run a small script in a fresh interpreter with the project importable."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def proc_status(pid="self") -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


@pytest.fixture
def in_child():
    return run_in_child


@pytest.fixture
def py():
    return run_python


@pytest.fixture
def status():
    return proc_status


def _mounts_under(base: str) -> set[tuple[str, str]]:
    base = base.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    return {(r[0], r[4]) for r in rows if r[4].encode().decode("unicode_escape").startswith(base)}


@pytest.fixture(autouse=True)
def no_mount_escapes_to_the_test_process(tmp_path_factory):
    """Every mount these tests make (always under pytest's temporary directory) belongs in a child's
    private namespace: fail, and lazily unmount it, if one shows up in the test process's own table.

    Only pytest's base temp dir is watched: other work on the machine mounts and unmounts concurrently
    and must never be touched.
    """
    base = str(tmp_path_factory.getbasetemp())
    before = _mounts_under(base)
    yield
    leaked = sorted(_mounts_under(base) - before, key=lambda m: -m[1].count("/"))
    if leaked:
        for _, mp in leaked:
            try:
                umount2(mp.encode().decode("unicode_escape"), MNT_DETACH)
            except OSError:
                pass
        pytest.fail(f"mounts leaked into the test process's namespace: {[mp for _, mp in leaked]}")
