"""What the service makes ahead for speed (sandboxes with an image's layers already mounted, armed
plans, remembered image resolutions) gives exactly what the slow path gives.

The regressions first (each from a user's report), then a differential test: random sequences of
store operations, each `run` done by a service that speculates and by one that does not
(``JUPYBOX_SPECULATE=0``, a service of its own on the same store), must give the same output, exit
code and file tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from jupybox.testing import import_image

pytestmark = [pytest.mark.root]

DOCKERFILE = """\
FROM busybox
RUN mkdir /app && echo draft > /app/notes.txt
COPY hello.sh /app/hello.sh
RUN chmod 755 /app/hello.sh && rm /app/notes.txt
CMD ["/app/hello.sh"]
"""


def jb(root, *args, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, timeout=120, input=input,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture
def store(jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, "busybox:latest")
    return jupybox_root


def _build_hello(root, ctx):
    ctx.mkdir(exist_ok=True)
    (ctx / "hello.sh").write_text('#!/bin/sh\necho "hello from $(hostname)"\n')
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    out = jb(root, "build", "-q", "-t", "hello:1", ctx)
    assert out.returncode == 0, out.stderr


def test_rmi_then_load_runs_the_new_layers_at_once(store, tmp_path):
    """notebook 04's steps, within the service's linger: the sandbox made ahead had the old layer
    directories mounted (deleted and made again at the same paths by rmi + load)."""
    _build_hello(store, tmp_path / "ctx")
    for _ in range(3):  # the sandboxes made ahead now have hello's layers mounted
        assert jb(store, "run", "--rm", "hello:1").stdout.startswith("hello from ")
    assert jb(store, "save", "-o", tmp_path / "x.tar", "hello:1").returncode == 0
    assert jb(store, "rmi", "hello:1").returncode == 0
    assert jb(store, "load", "-i", tmp_path / "x.tar").returncode == 0
    for _ in range(3):  # the next runs too: whatever the pool made meanwhile
        out = jb(store, "run", "--rm", "hello:1")
        assert out.returncode == 0 and out.stdout.startswith("hello from "), out
        out = jb(store, "run", "--rm", "hello:1", "ls", "/app")
        assert out.stdout.split() == ["hello.sh"], out


def test_a_store_deleted_under_its_service(store, busybox_tar):
    """rm -rf of the store while its service lives, then a new store at the same path: the old
    service notices (the root's inode) and leaves; the next command gets a fresh one."""
    assert jb(store, "run", "--rm", "busybox", "true").returncode == 0
    from jupybox.service import address

    sock = address.connect(store)
    assert sock is not None
    old_pid = __import__("jupybox.service.wire", fromlist=["x"]).peer_cred(sock)[0]
    sock.close()
    from jupybox.testing.leaks import cleanup_mounts_under

    cleanup_mounts_under(store)
    shutil.rmtree(store)
    store.mkdir()
    import_image(store, busybox_tar, "bb")
    out = jb(store, "run", "--rm", "bb", "id", "-u")
    assert (out.returncode, out.stdout) == (0, "0\n"), out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{old_pid}"):
        try:
            os.waitpid(old_pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{old_pid}") or open(f"/proc/{old_pid}/stat").read().split()[2] == "Z"


def test_run_detached_interactive_keeps_the_output(store):
    out = jb(store, "run", "-d", "-i", "host", "sh", input="echo hi\necho there >&2\n")
    assert out.returncode == 0, out.stderr
    cid = out.stdout.strip()
    assert jb(store, "wait", cid).stdout.strip() == "0"
    logs = jb(store, "logs", cid)
    assert logs.stdout == "hi\n" and logs.stderr == "there\n"


# -- the differential test -----------------------------------------------------------------------------
FAST = {}
SLOW = {"JUPYBOX_SPECULATE": "0"}
SCRIPTS = ["cat /etc/hostname >/dev/null; ls / | sort | tr '\\n' ' '", "cat /app/hello.sh 2>&1; echo $?",
           "id; pwd; echo $HOME", "ls -la /data 2>&1 | tail -n +2 | awk '{print $1, $NF}'",
           "cat /data/f 2>&1", "echo x > /data/f 2>&1; echo $?"]


class SameOnBothPaths(RuleBasedStateMachine):
    """Random operations on one store; every run compared between a speculating service and a
    cold one."""

    root = None
    ctx = None
    tarball = None

    @initialize()
    def start(self):
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        import_image(self.root, self.tarball, "busybox:latest")
        _build_hello(self.root, self.ctx)
        self.images = {"busybox:latest", "hello:1"}
        self.volumes = set()
        self.saved = False

    @rule(tag=st.sampled_from(["t:1", "t:2"]), src=st.sampled_from(["busybox:latest", "hello:1"]))
    def tag(self, tag, src):
        if src in self.images:
            assert jb(self.root, "tag", src, tag).returncode == 0
            self.images.add(tag)

    @rule(ref=st.sampled_from(["t:1", "t:2", "hello:1"]))
    def rmi(self, ref):
        out = jb(self.root, "rmi", ref)
        if out.returncode == 0:
            self.images.discard(ref)

    @rule()
    def build(self):
        _build_hello(self.root, self.ctx)
        self.images.add("hello:1")

    @rule()
    def save_then_rmi_then_load(self):
        if "hello:1" not in self.images:
            return
        tar = self.ctx / "img.tar"
        assert jb(self.root, "save", "-o", tar, "hello:1").returncode == 0
        assert jb(self.root, "rmi", "-f", "hello:1").returncode == 0
        assert jb(self.root, "load", "-i", tar).returncode == 0

    @rule(script=st.sampled_from(SCRIPTS))
    def reload_then_run(self, script):
        """The sequence of notebook 04: run an image, replace its layers, run it again."""
        if "hello:1" not in self.images:
            return
        self.run_both_ways("hello:1", script, None, None, 2)
        self.save_then_rmi_then_load()
        self.run_both_ways("hello:1", script, None, None, 2)

    @rule()
    def reimport(self):
        assert jb(self.root, "import", self.tarball, "busybox:latest").returncode == 0

    @rule(name=st.sampled_from(["v1", "v2"]))
    def volume_create_or_rm(self, name):
        if name in self.volumes:
            if jb(self.root, "volume", "rm", name).returncode == 0:
                self.volumes.discard(name)
        else:
            assert jb(self.root, "volume", "create", name).returncode == 0
            self.volumes.add(name)

    @rule(image=st.sampled_from(["busybox:latest", "hello:1", "t:1", "t:2"]), script=st.sampled_from(SCRIPTS),
          volume=st.sampled_from([None, "v1", "v2"]), user=st.sampled_from([None, "1000", "nobody"]),
          repeat=st.integers(min_value=1, max_value=3))
    def run_both_ways(self, image, script, volume, user, repeat):
        args = ["run", "--rm", "--network", "none", "--hostname", "same"]
        if volume:
            args += ["-v", f"{volume}:/data"]
        if user:
            args += ["-u", user]
        args += [image, "sh", "-c", script]
        for _ in range(repeat):  # a repeated spec is the one a sandbox gets armed for
            fast = jb(self.root, *args, env=FAST)
            slow = jb(self.root, *args, env=SLOW)
            assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr), \
                (args, fast, slow)

    @invariant()
    def nothing_left_running(self):
        if self.root is not None and self.root.exists():
            assert jb(self.root, "ps", "-q").stdout.strip() == ""

    def teardown(self):
        from jupybox.testing.leaks import stop_services

        if self.root is not None and self.root.exists():
            stop_services(self.root)


def test_the_fast_path_gives_what_the_slow_path_gives(tmp_path, busybox_tar, monkeypatch):
    SameOnBothPaths.root = tmp_path / "store"
    SameOnBothPaths.ctx = tmp_path / "ctx"
    SameOnBothPaths.tarball = str(busybox_tar)
    SameOnBothPaths.ctx.mkdir()
    try:
        run_state_machine_as_test(SameOnBothPaths, settings=settings(
            max_examples=int(os.environ.get("JUPYBOX_DIFF_EXAMPLES", "6")), stateful_step_count=12, deadline=None,
            suppress_health_check=list(HealthCheck)))
    finally:
        from jupybox.testing.leaks import stop_services

        if SameOnBothPaths.root.exists():
            stop_services(SameOnBothPaths.root)
