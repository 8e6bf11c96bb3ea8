"""Shared fixtures; the helpers themselves live in the public module ``jupybox.testing``.

Markers:  @pytest.mark.root       skipped unless euid 0
          @pytest.mark.leakcheck  fail if mounts/cgroups/processes/fds are left behind
Fixtures: jupybox_root (fresh store per test, also $JUPYBOX_ROOT), session_root,
          busybox_tar, busybox_dir, busybox_image, debian_tar, registry,
          registry_factory, leak_check, artifacts_dir
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from jupybox.testing import (
    Registry,
    assert_no_leaks,
    busybox_rootfs,
    busybox_tarball,
    cache_dir,
    debian_tarball,
    import_image,
    registry_available,
    snapshot,
)
from jupybox.testing.leaks import cleanup_mounts_under, kill_processes_under, stop_services

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
# this run's containers get a cgroup parent of their own (like docker's --cgroup-parent): the leak
# checks then see only them, not a notebook's or another run's on the same machine
os.environ.setdefault("JUPYBOX_CGROUP_PARENT", f"jupybox-test-{os.getpid()}")
# Nothing else is pinned: the suite runs on the defaults a user has (the store's service, the
# default bridge). `make test` runs it in a network namespace of its own (jupybox.testing.netns),
# so the bridges and nftables tables those defaults make live and die there.


# --- markers -------------------------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line("markers", "root: needs euid 0 (namespaces, mounts, cgroups); skipped otherwise")
    config.addinivalue_line(
        "markers", "leakcheck: fail if mounts, cgroups, child processes or fds are left behind by the test"
    )


def pytest_report_header(config):
    try:
        from jupybox.cgroups.detect import detect_layout  # type: ignore

        layout = detect_layout()
    except Exception:
        layout = "?"
    return [f"jupybox: euid={os.geteuid()} cgroups={layout} test-cache={cache_dir(create=False)}"]


def pytest_runtest_setup(item):
    if item.get_closest_marker("root") and not IS_ROOT:
        pytest.skip("needs root")


# --- stores ----------------------------------------------------------------------------------
def _teardown_store(path: Path, node=None) -> None:
    """Stop the store's service (its containers with it), then kill container processes still
    rooted in ``path`` and unmount what is mounted under it.

    What had to be cleaned beyond the service's own shutdown is recorded on the test item so that
    ``leakcheck`` still reports it (this runs before the leak check's own teardown).
    """
    stop_services(path)
    killed = kill_processes_under(path)
    unmounted = cleanup_mounts_under(path)
    if (path / "networks").exists():  # its bridges and table go with it (as `system reset` does)
        from jupybox import network
        from jupybox.paths import Layout

        try:
            network.networks(Layout(path)).remove_kernel_objects()
        except Exception:  # noqa: BLE001 - a teardown reports, it does not fail the next test
            pass
    if node is not None and (killed or unmounted):
        extra = getattr(node, "_jbx_cleaned", [])
        extra += [f"processes: {p}: {c}" for p, c in killed.items()]
        extra += [f"mounts: {m}" for m in unmounted]
        node._jbx_cleaned = extra


@pytest.fixture
def jupybox_root(tmp_path, monkeypatch, request) -> Path:
    """A fresh, empty jupybox store for this test; ``$JUPYBOX_ROOT`` points at it for subprocesses."""
    root = tmp_path / "jbx-root"
    root.mkdir()
    monkeypatch.setenv("JUPYBOX_ROOT", str(root))
    request.node._jbx_roots = getattr(request.node, "_jbx_roots", ()) + (str(root),)
    yield root
    _teardown_store(root, request.node)


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    """One store for the whole session (images are imported once); pass it as ``root=``."""
    root = tmp_path_factory.mktemp("jbx-session-root")
    yield root
    _teardown_store(root)


# --- images ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def test_cache() -> Path:
    """``$JUPYBOX_TEST_CACHE`` or ``~/.cache/jupybox-tests``: slow artefacts, kept across runs."""
    return cache_dir()


@pytest.fixture(scope="session")
def busybox_tar(test_cache) -> Path:
    """A cached, deterministic ``.tar.gz`` of a busybox-static rootfs."""
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    return busybox_tarball(test_cache)


@pytest.fixture
def busybox_dir(tmp_path) -> Path:
    """A fresh busybox rootfs directory (a few ms to build)."""
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    return busybox_rootfs(tmp_path / "busybox-rootfs")


@pytest.fixture(scope="session")
def busybox_image(session_root, busybox_tar):
    """``busybox:latest`` imported into ``session_root``: a TestImage (``.ref``, ``.root``, ``.store``)."""
    try:
        return import_image(session_root, busybox_tar, "busybox:latest")
    except ImportError as e:
        pytest.skip(f"jupybox.image.ImageStore/import_rootfs not available yet ({e})")


@pytest.fixture(scope="session")
def debian_tar(test_cache) -> Path:
    """A cached mmdebstrap bookworm minbase + python3 tarball (~35 s the first time)."""
    path = debian_tarball(test_cache, include=("python3",))
    if path is None:
        pytest.skip("mmdebstrap is not installed")
    return path


# --- registry --------------------------------------------------------------------------------
@pytest.fixture
def registry_factory():
    """``registry_factory(auth=("user", "pass"))`` starts another loopback registry; all stop at teardown."""
    if not registry_available():
        pytest.skip("docker-registry is not installed")
    started: list[Registry] = []

    def make(**kwargs) -> Registry:
        reg = Registry(**kwargs).start()
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def registry(registry_factory) -> Registry:
    """A loopback registry without auth: ``.url``, ``.host`` ("127.0.0.1:PORT")."""
    return registry_factory()


# --- leaks -----------------------------------------------------------------------------------
def _reap_zombie_children(settle: float = 1.0) -> None:
    """Reap exited children of this process that nobody waits for.

    Once a test has used the runtime in-process, pytest is a subreaper (a container's monitor must
    be), so orphans of other tests' processes (the children of a shell killed in a cgroup test)
    come to it and would stay zombies: exited processes, not leaks of the test being checked."""
    import time

    if not _is_subreaper():
        return
    deadline = time.monotonic() + settle
    while True:
        reaped = 0
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            return
        for pid in kids:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    data = f.read()
                if data[data.rindex(b")") + 2 : data.rindex(b")") + 3] == b"Z":
                    os.waitpid(pid, os.WNOHANG)
                    reaped += 1
            except (OSError, ValueError):
                pass
        # orphans are re-parented to us a moment after their parent dies: look again briefly
        if time.monotonic() > deadline or (not reaped and time.monotonic() > deadline - settle + 0.2):
            return
        time.sleep(0.02)


def _is_subreaper() -> bool:
    from jupybox.linux import syscalls

    try:
        return bool(syscalls.get_child_subreaper())
    except OSError:
        return False


@pytest.fixture
def leak_check(request):
    """Snapshot before the test; after it, fail on new mounts/cgroups/descendants/fds.

    Use directly (``def test_x(leak_check)``) or through ``@pytest.mark.leakcheck(grace=2, check_fds=True)``.
    """
    marker = request.node.get_closest_marker("leakcheck")
    opts = dict(marker.kwargs) if marker else {}
    before = snapshot()
    yield before
    _reap_zombie_children()
    cleaned = getattr(request.node, "_jbx_cleaned", [])
    roots = tuple(getattr(request.node, "_jbx_roots", ()))
    funcargs = getattr(request.node, "funcargs", {})
    if "session_root" in funcargs:
        roots += (str(funcargs["session_root"]),)
    if "busybox_image" in funcargs and getattr(funcargs["busybox_image"], "root", None):
        roots += (str(funcargs["busybox_image"].root),)
    try:
        assert_no_leaks(before, roots, grace=opts.get("grace", 2.0), check_fds=opts.get("check_fds", True),
                        fd_slack=opts.get("fd_slack", 0))
    except AssertionError as e:
        if cleaned:
            raise AssertionError(f"{e}\n  (and cleaned up by the store fixture: {cleaned})") from None
        raise
    if cleaned:
        raise AssertionError("resources left behind (cleaned up by the store fixture):\n  " + "\n  ".join(cleaned))


@pytest.fixture(autouse=True)
def _leakcheck_marker(request):
    """Turns ``@pytest.mark.leakcheck`` into the ``leak_check`` fixture (set up first, torn down last)."""
    if request.node.get_closest_marker("leakcheck") and "leak_check" not in request.fixturenames:
        request.getfixturevalue("leak_check")
    yield


@pytest.fixture(autouse=True, scope="module")
def _close_service_connections():
    """Each test module ends with no connection of this process to a store's service."""
    yield
    import jupybox.api

    jupybox.api.shutdown()


# --- artifacts -------------------------------------------------------------------------------
@pytest.fixture
def artifacts_dir(request) -> Path:
    """``$JUPYBOX_TEST_ARTIFACTS`` or ``<repo>/test-artifacts``, one sub-dir per test (gitignored)."""
    base = Path(os.environ.get("JUPYBOX_TEST_ARTIFACTS") or REPO / "test-artifacts")
    path = base / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[:150]
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _host_links() -> set[str]:
    try:
        return {n for n in os.listdir("/sys/class/net") if n.startswith(("jbx-", "jv"))}
    except OSError:
        return set()


_LINKS_AT_START = _host_links()  # e.g. /var/lib/jupybox's own default bridge, made by `make demo`


@pytest.fixture(autouse=True)
def no_bridge_or_veth_in_the_host_network_namespace(request):
    """Tests make bridges only in network namespaces of their own. A jupybox link that appears in
    the host's namespace anyway (seen once, at the end of a full run, not located yet) is named
    here with the test that was running, as a warning, and removed."""
    yield
    new = _host_links() - _LINKS_AT_START
    if new:
        import subprocess
        import warnings

        for link in sorted(new):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        warnings.warn(f"{request.node.nodeid} (or something it left running) made {sorted(new)} "
                      "in the host's network namespace", stacklevel=1)
