"""Fixtures for the cgroup tests: real drivers under a unique parent (root only), a fake cgroup2 "kernel"
in tmp_path, and helpers that run child processes which attach themselves the way the launcher does."""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys

import pytest

from jupybox.cgroups import _fs, open_driver

_counter = itertools.count()

# -- real cgroups (whatever the host has: v1 or hybrid on a hybrid VM, v2 in the v2 guest, tests/v2guest) ---


def _real_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    try:
        drv = open_driver(parent="jupybox-probe")
    except Exception as e:  # no cgroup fs at all
        return f"no cgroups: {e}"
    if "memory" not in drv.controllers:
        return f"no memory controller available ({drv.layout})"
    return None


REAL_SKIP = _real_skip_reason()


@pytest.fixture
def real_driver():
    """A real driver for the host's layout whose parent is unique to this test (never collides
    with real containers); at teardown every cgroup and the parent must be gone."""
    if REAL_SKIP is not None:
        pytest.skip(REAL_SKIP)
    parent = f"jupybox-test-{os.getpid()}-{next(_counter)}"
    drv = open_driver(parent=parent)
    yield drv
    errors = []
    for name in drv.list():
        try:
            drv.open(name).remove()
        except Exception as e:  # keep cleaning the others
            errors.append(e)
    drv.remove_parent_if_empty()
    left = [p for p in drv.parent_dirs() if os.path.isdir(p)]
    assert not errors and not left, f"cgroup cleanup failed: {errors} {left}"


@pytest.fixture(scope="session")
def kernel() -> tuple[int, int]:
    """The running kernel's (major, minor): v2 files came with releases (memory.peak 5.19, cgroup.kill 5.14)."""
    major, minor = os.uname().release.split("-")[0].split(".")[:2]
    return int(major), int(minor)


@pytest.fixture
def v1_driver(real_driver):
    if real_driver.version != 1:
        pytest.skip(f"the host has cgroup {real_driver.layout}: these tests are for v1/hybrid")
    return real_driver


@pytest.fixture
def v2_driver(real_driver):
    if real_driver.version != 2:
        pytest.skip(f"the host has cgroup {real_driver.layout}: these tests need a pure v2 kernel "
                    "(they run in the v2 guest: tests/v2guest)")
    return real_driver


@pytest.fixture
def children():
    """Processes started by a test; SIGKILLed and reaped at teardown whatever happens."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for f in (p.stdout, p.stderr):
            if f:
                f.close()


ATTACH_PRELUDE = """
import os, sys
for _p in sys.argv[1:]:
    with open(_p, "w") as _f:
        _f.write("0")
"""


@pytest.fixture
def spawn_attached(children):
    """spawn_attached(cg, code): a python child that joins ``cg`` itself (writes "0" to each of
    ``cg.attach_self_paths()``, as the launcher's child does) and then runs ``code``; reaped at teardown."""

    def spawn(cg, code: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-I", "-c", ATTACH_PRELUDE + code, *cg.attach_self_paths()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(p)
        return p

    return spawn


@pytest.fixture
def spawn_forker(spawn_attached):
    """spawn_forker(cg): a child in ``cg`` that forks sleepers for ever, at the pids limit too (a
    shell would exit with 2 at its first failed fork, maybe before the kill a test makes: seen once
    in CI)."""
    return lambda cg: spawn_attached(cg, "import time\n"
                                         "while True:\n"
                                         "    try:\n"
                                         "        if os.fork() == 0:\n"
                                         "            time.sleep(1000)\n"
                                         "            os._exit(0)\n"
                                         "    except OSError:\n"
                                         "        time.sleep(0.001)\n")


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


# -- fake cgroup2 ------------------------------------------------------------------------------------------

ROOT_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
    "cgroup.subtree_control": "cpu\n",
    "cgroup.procs": "1\n",
    "cpu.stat": "usage_usec 99\nuser_usec 50\nsystem_usec 49\n",
}
CHILD_FILES = {
    "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cgroup.subtree_control": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
}
CONTROLLER_FILES = {
    "cpu": {"cpu.max": "max 100000\n", "cpu.weight": "100\n"},
    "memory": {
        "memory.max": "max\n",
        "memory.swap.max": "max\n",
        "memory.current": "0\n",
        "memory.peak": "0\n",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    },
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
}


class FakeCgroup2:
    """Plays the kernel for a cgroup2 tree in a tmp dir: mkdir populates the control files, rmdir refuses
    a cgroup with children or processes (EBUSY) and otherwise drops its files like cgroupfs does."""

    def __init__(self, root, controllers=("cpu", "memory", "pids"), omit_files=()):
        self.root = str(root)
        self.controllers = controllers
        self.omit_files = set(omit_files)
        for name, text in ROOT_FILES.items():
            self._write(os.path.join(self.root, name), text)

    @staticmethod
    def _write(path, text):
        with open(path, "w") as f:
            f.write(text)

    def mkdir(self, path, *a):
        os.mkdir(path)
        files = dict(CHILD_FILES)
        files["cgroup.controllers"] = " ".join(self.controllers) + "\n"
        for c in self.controllers:
            files.update(CONTROLLER_FILES[c])
        for name, text in files.items():
            if name not in self.omit_files:
                self._write(os.path.join(path, name), text)

    def rmdir(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        entries = list(os.scandir(path))
        if any(e.is_dir() for e in entries):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        procs = os.path.join(path, "cgroup.procs")
        if os.path.exists(procs) and read(procs):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for e in entries:
            os.unlink(e.path)
        os.rmdir(path)


@pytest.fixture
def make_fake_v2(tmp_path, monkeypatch):
    """make_fake_v2(controllers=..., omit_files=..., root_subtree=...) -> (fake kernel, v2 driver on it)."""
    count = itertools.count()

    def make(controllers=("cpu", "memory", "pids"), omit_files=(), root_subtree=None):
        root = tmp_path / f"cgroup{next(count)}"
        root.mkdir()
        kernel = FakeCgroup2(root, controllers, omit_files)
        if root_subtree is not None:
            kernel._write(os.path.join(kernel.root, "cgroup.subtree_control"), root_subtree)
        monkeypatch.setattr(_fs, "mkdir", kernel.mkdir)
        monkeypatch.setattr(_fs, "rmdir", kernel.rmdir)
        return kernel, open_driver(root=str(root), parent="jupybox", layout="v2")

    return make


@pytest.fixture
def fake_v2(make_fake_v2):
    """(fake kernel, driver) for a v2 tree whose root has "cpu" enabled in cgroup.subtree_control."""
    return make_fake_v2()
