"""Rootless mode, for real: an unprivileged user made by the test runs jupybox.

Two users: one with /etc/subuid and /etc/subgid ranges (a full 65536-id map through newuidmap)
and one without (only root is mapped). Each runs the CLI, the Python API and the magic with its
default store (~/.local/share/jupybox). On hybrid cgroups (v1 is never delegated to users)
limits are the rlimit/psutil kind; the v2 delegation is tested against a v2-shaped directory in
tests/cgroups/test_user_driver.py and for real in the v2 guest (tests/cgroups/test_cgroups_v2_delegated.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from jupybox.testing.leaks import cmdline
from jupybox.testing.rootless import unavailable, unprivileged_user

pytestmark = [pytest.mark.root, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]

JUPYBOX = os.path.join(os.path.dirname(sys.executable), "jupybox")
DOCKER_CAPS = "00000000a80425fb"


def _user_with_busybox(tarball, subids: bool):
    cm = unprivileged_user(subids=subids)
    user = cm.__enter__()
    tar = user.give(tarball, "busybox.tar.gz")
    out = user.run([JUPYBOX, "import", str(tar), "busybox"])
    if out.returncode != 0:
        cm.__exit__(None, None, None)
        raise AssertionError(out.stderr)
    return cm, user


@pytest.fixture(scope="module")
def full_user(busybox_tar):
    cm, user = _user_with_busybox(busybox_tar, subids=True)
    yield user
    cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def single_user(busybox_tar):
    cm, user = _user_with_busybox(busybox_tar, subids=False)
    yield user
    cm.__exit__(None, None, None)


@pytest.fixture(params=["full", "single"])
def user(request):
    return request.getfixturevalue(f"{request.param}_user")


def jb(user, *args, **kw):
    return user.run([JUPYBOX, *args], **kw)


def ok(out):
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    return out.stdout


def test_info_says_rootless_and_why(user):
    data = json.loads(ok(jb(user, "info", "--format", "json")))
    assert data["mode"] == "rootless" and data["isolated"] is True
    assert data["root"] == str(user.home / ".local/share/jupybox")
    assert data["overlay"] == "overlay (userxattr)"
    assert ("1-65536 ->" in data["id_map"]) == user.subids
    assert data["cgroups"]["layout"] == "none" and "delegated" in data["cgroups"]["why_none"]
    assert data["default_network"] == "host"


def test_isolation_checks_hold(user):
    script = ("cat /proc/self/uid_map; echo pid1=$(cat /proc/1/comm); hostname; "
              "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
              "ls /proc | grep -c '^[0-9]'; test -e $HOSTHOME && echo HOSTHOME; "
              "wc -c < /proc/kcore || echo KCORE_ABSENT; mount -t tmpfs t /mnt 2>&1 || echo MOUNT_REFUSED")
    out = ok(jb(user, "run", "--rm", "--hostname", "inside", "-e", f"HOSTHOME={user.home}", "busybox", "sh", "-c", script))
    lines = out.splitlines()
    assert lines[0].split() == ["0", str(user.uid), "1"]
    assert any(ln.startswith("pid1=") and ln != "pid1=sh" for ln in lines)  # our init is PID 1
    assert "inside" in lines
    assert f"CapEff:\t{DOCKER_CAPS}" in out and "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    nprocs = int(next(ln for ln in lines if ln.isdigit()))
    assert nprocs < 10  # only the container's processes: init, sh, ls, grep
    assert "HOSTHOME" not in out
    assert "\n0\n" in out or "KCORE_ABSENT" in out  # masked (a proc mounted in a user namespace has none)
    assert "MOUNT_REFUSED" in out


def test_ids_other_than_root(full_user, single_user):
    out = ok(jb(full_user, "run", "--rm", "--user", "1000:1000", "busybox", "id"))
    assert out.startswith("uid=1000") and "gid=1000" in out
    ok(jb(full_user, "run", "--rm", "busybox", "chown", "1000:1000", "/tmp"))
    # what a sub-id wrote (a directory the user cannot empty on the host) still goes with rm
    ok(jb(full_user, "run", "--name", "subid", "--user", "1000", "busybox", "sh", "-c",
          "mkdir -m 700 /tmp/d && echo x > /tmp/d/f"))
    data = full_user.home / ".local/share/jupybox/containers"
    owners = {p.stat().st_uid for p in data.rglob("d")}
    assert owners and full_user.uid not in owners  # a sub-id on the host
    ok(jb(full_user, "rm", "subid"))
    ok(jb(full_user, "system", "shutdown"))  # its sandboxes made ahead go with it
    assert not list(data.iterdir())
    assert not list((full_user.home / ".local/share/jupybox/tmp").iterdir())

    out = jb(single_user, "run", "--rm", "--user", "1000", "busybox", "id")
    assert out.returncode == 125
    assert "maps only root" in out.stderr and "/etc/subuid" in out.stderr and len(out.stderr.splitlines()) == 1
    out = jb(single_user, "run", "--rm", "busybox", "chown", "1000", "/tmp")
    assert out.returncode != 0 and "Invalid argument" in out.stderr


def test_limits_without_cgroups_are_rlimits(user):
    # a fork bomb held by --pids-limit (RLIMIT_NPROC in the container's own user namespace)
    bomb = ("import os, time\nn = 0\nfor i in range(30):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n"
            "    n += 1\nprint('started', n)")
    out = ok(jb(user, "run", "--rm", "--pids-limit", "8", "host", "python3", "-c", bomb))
    started = int(out.split("started")[1])
    assert 0 < started < 8, out
    # -m: an allocation beyond it fails in the process (RLIMIT_DATA)
    out = jb(user, "run", "--rm", "-m", "64m", "host", "python3", "-c", "b = bytearray(200 * 2**20)")
    assert out.returncode == 1 and "MemoryError" in out.stderr
    out = jb(user, "run", "--rm", "-m", "64m", "--cpus", "0.5", "host", "python3", "-c", "b = bytearray(20 * 2**20)")
    assert out.returncode == 0
    # what is not enforced is said, in one line
    warning = [ln for ln in out.stderr.splitlines() if ln.startswith("jupybox: warning: no cgroups for this user")]
    assert len(warning) == 1 and "--cpus 0.5 is not enforced" in warning[0] and "per-process" in warning[0]
    assert "warning" not in jb(user, "run", "--rm", "busybox", "true").stderr  # no limits, nothing to say


def test_networks(user):
    assert ok(jb(user, "run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")).split() == ["lo"]
    out = jb(user, "run", "--rm", "--network", "bridge", "busybox", "true")
    assert out.returncode == 125 and "needs root" in out.stderr
    out = jb(user, "run", "--rm", "-p", "8080:80", "--network", "host", "busybox", "true")
    assert out.returncode == 125 and "needs root" in out.stderr


def test_detached_exec_stats_rm_leave_nothing(user):
    name = f"d-{user.name}"
    ok(jb(user, "run", "-d", "--name", name, "busybox", "sleep", "60"))
    try:
        assert ok(jb(user, "exec", name, "cat", "/proc/self/uid_map")).split()[:3] == ["0", str(user.uid), "1"]
        stats = json.loads(ok(jb(user, "stats", "--no-stream", "--format", "json", name)).splitlines()[0])
        assert stats["pids_current"] >= 2 if "pids_current" in stats else True
        assert ok(jb(user, "inspect", "-f", "{{.State.Status}}", name)).strip() == "running"
    finally:
        ok(jb(user, "rm", "-f", name))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and user.processes():
        time.sleep(0.05)
    assert user.processes() == [], _cmdlines(user.processes())
    assert ok(jb(user, "ps", "-a", "-q")).strip() == ""


def _cmdlines(pids):
    return {pid: cmdline(pid) for pid in pids}


def test_kill9_of_the_cli_leaves_nothing_prune_cannot_remove(user):
    p = user.popen([JUPYBOX, "run", "--name", f"k-{user.name}", "busybox", "sleep", "60"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ok(jb(user, "ps", "-q")).strip():
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)  # setpriv execs jupybox: this is the CLI itself
    p.wait()
    # the container dies with its monitor (PDEATHSIG): a prune in that very moment would see it live
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and user.processes():
        time.sleep(0.05)
    ok(jb(user, "prune"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and user.processes():
        time.sleep(0.05)
    assert user.processes() == [], _cmdlines(user.processes())
    assert ok(jb(user, "ps", "-a", "-q")).strip() == ""


MAGIC = r"""
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
ip.run_line_magic("load_ext", "jupybox")
ip.user_ns["x"] = 21
ip.run_cell_magic("container", "-i x -o y --no-chart", "import os\ny = x * 2\nprint('uid', os.getuid(), 'pid', os.getpid())")
print("y =", ip.user_ns["y"])
ip.run_cell_magic("container", "-m 64m --cpus 0.5 --no-chart", "pass")
ip.run_cell_magic("container", "-m 64m --cpus 0.5 --no-chart", "pass")
import time
import jupybox
c = jupybox.run("host", ["sleep", "2"], remove=True, memory="64m")
time.sleep(0.3)
s = c.stats()
print("stats", s.memory_current > 0, s.pids_current >= 2)
print("exit", c.wait())
"""


def test_api_and_magic(user):
    out = user.python(MAGIC)
    assert out.returncode == 0, out.stderr
    assert "uid 0 pid 2" in out.stdout  # root inside, PID 2 under our init
    assert "y = 42" in out.stdout
    assert "stats True True" in out.stdout
    assert "exit 0" in out.stdout
    assert out.stderr.count("said once per kernel") == 1 and "--cpus 0.5 is not enforced" in out.stderr


KERNEL = r"""
import jupyter_client
km = jupyter_client.KernelManager(kernel_name="jbxrl")
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
kc.execute_interactive("import os; print('map', open('/proc/self/uid_map').read().split()[:3], 'pid', os.getpid())",
                       timeout=30)
km.shutdown_kernel(now=False)
print("alive after shutdown:", km.is_alive())
"""


def test_kernel_in_a_container(full_user):
    ok(jb(full_user, "kernel", "install", "--user", "--name", "jbxrl", "-m", "1g"))
    out = full_user.python(KERNEL)
    assert out.returncode == 0, out.stderr
    assert f"map ['0', '{full_user.uid}', '1'] pid 2" in out.stdout
    assert "alive after shutdown: False" in out.stdout
    ok(jb(full_user, "kernel", "remove", "jbxrl"))


DOCKERFILE = """\
FROM busybox
RUN mkdir -p /data && echo one > /data/a && rm -rf /home
COPY hello.txt /data/
RUN chown 0:0 /data/a && ls /data
CMD ["cat", "/data/hello.txt", "/data/a"]
"""


def test_build_and_run(user):
    ctx = user.home / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "hello.txt").write_text("hi\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    for p in (ctx, ctx / "hello.txt", ctx / "Dockerfile"):
        os.chown(p, user.uid, user.gid)
    ok(jb(user, "build", "-t", "rl-built", str(ctx)))
    assert ok(jb(user, "run", "--rm", "rl-built")).split() == ["hi", "one"]
    ok(jb(user, "run", "--rm", "busybox", "test", "-d", "/home/user"))
    assert jb(user, "run", "--rm", "rl-built", "test", "-e", "/home").returncode == 1  # whited out
    ok(jb(user, "rmi", "rl-built"))


def _dev_fuse_mode(mode: int):
    """/dev/fuse with ``mode`` for the test, put back as it was afterwards."""
    st = os.stat("/dev/fuse")
    os.chmod("/dev/fuse", mode)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", st.st_mode & 0o7777)


@pytest.fixture
def fuse_for_users():
    """/dev/fuse usable by users, as Debian's udev rule makes it (0666); some machines have it 0600."""
    yield from _dev_fuse_mode(0o666)


def test_fuse_overlayfs_fallback(full_user, fuse_for_users):
    """Kernels before 5.11 cannot mount overlayfs in a user namespace: fuse-overlayfs instead
    (forced here with JUPYBOX_OVERLAY, as `jupybox info` would pick it there)."""
    env = {"JUPYBOX_OVERLAY": "fuse-overlayfs"}
    assert json.loads(ok(jb(full_user, "info", "--format", "json", env=env)))["overlay"] == "fuse-overlayfs"
    out = ok(jb(full_user, "run", "--rm", "busybox", "sh", "-c",
                "echo hi > /x && cat /x && rm /bin/ls && test ! -e /bin/ls && grep ' / ' /proc/mounts", env=env))
    assert out.startswith("hi\n") and "fuse-overlayfs / fuse.fuse-overlayfs" in out
    assert ok(jb(full_user, "run", "--rm", "busybox", "test", "-e", "/bin/ls", env=env)) == ""  # the image is intact
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and full_user.processes():
        time.sleep(0.05)
    assert full_user.processes() == [], _cmdlines(full_user.processes())


@pytest.fixture
def fuse_for_root_only():
    """/dev/fuse 0600, as on a machine without udev's rule."""
    yield from _dev_fuse_mode(0o600)


def test_fuse_overlayfs_without_dev_fuse_says_why(full_user, fuse_for_root_only):
    """Seen in the v2 guest's 5.10 boot (no udev there): the failure names /dev/fuse, and leaves nothing."""
    env = {"JUPYBOX_OVERLAY": "fuse-overlayfs"}
    out = jb(full_user, "run", "--rm", "busybox", "true", env=env)
    assert out.returncode == 125, out
    assert "fuse-overlayfs" in out.stderr and "/dev/fuse is not open to this user" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert ok(jb(full_user, "ps", "-a", "-q", env=env)) == ""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and full_user.processes():
        time.sleep(0.05)
    assert full_user.processes() == [], _cmdlines(full_user.processes())


def test_run_rm_through_the_users_own_service(user):
    """The store's service for a user: it runs as that user, in the user's store, and leaves when
    idle (after JUPYBOX_SERVICE_LINGER seconds, 0.5 for test users)."""
    out = jb(user, "run", "--rm", "busybox", "sh", "-c", "cat /proc/self/uid_map; exit 4")
    assert out.returncode == 4 and out.stdout.split()[:3] == ["0", str(user.uid), "1"], out
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and user.processes():
        time.sleep(0.05)
    assert user.processes() == [], _cmdlines(user.processes())
    assert ok(jb(user, "ps", "-a", "-q")) == ""
