"""The Python API through the store's service: the path the notebook kernel takes (root only)."""

from __future__ import annotations

import gc
import os
import tempfile
import time

import pytest

import jupybox
from jupybox.testing import leaks

pytestmark = [pytest.mark.root]

BB = "busybox:latest"


def test_run_wait_logs(busybox_image):
    c = jupybox.run(BB, ["sh", "-c", "echo out; echo err >&2; exit 4"], root=busybox_image.root, name="api1")
    try:
        assert c.wait(timeout=10) == 4
        assert c.status == "exited"
        assert c.logs() == "out\nerr\n"
        assert c.logs(stderr=False) == "out\n"
        assert c.inspect()["State"]["ExitCode"] == 4
    finally:
        c.remove()


def test_run_streams_to_given_fds(busybox_image):
    r, w = os.pipe()
    c = jupybox.run(BB, ["sh", "-c", "echo one; sleep 0.2; echo two"], root=busybox_image.root, stdout=w,
                    remove=True)
    os.close(w)
    first = os.read(r, 100)
    assert first == b"one\n"  # arrives before the container ends
    assert c.wait(timeout=10) == 0
    rest = b""
    while True:
        chunk = os.read(r, 100)
        if not chunk:
            break
        rest += chunk
    os.close(r)
    assert rest == b"two\n"


def test_stats_kill_exec(busybox_image):
    c = jupybox.run(BB, ["sleep", "30"], root=busybox_image.root, memory="64m", cpus=0.5, pids_limit=20)
    try:
        st = c.stats()
        assert st.memory_limit == 64 << 20 and st.pids_limit == 20 and st.cpu_quota == 0.5
        with tempfile.TemporaryFile() as out:
            assert c.exec(["sh", "-c", "echo $$; hostname"], stdout=out) == 0
            out.seek(0)
            pid, host = out.read().decode().split()
        assert int(pid) > 1 and host == c.short_id
        c.kill("TERM")
        assert c.wait(timeout=10) == 143
    finally:
        c.remove(force=True)


def test_oom_result(busybox_image):
    c = jupybox.run("host", ["python3", "-c", "b = b'x' * (200 << 20)"], root=busybox_image.root, memory="48m",
                    remove=True)
    assert c.wait(timeout=30) == 137
    res = c.result()
    assert res["oom_killed"] is True
    assert res["extra"]["memory_limit"] == 48 << 20


def test_unknown_image_error(busybox_image):
    with pytest.raises(jupybox.ImageNotFound):
        jupybox.run("nope:1", ["true"], root=busybox_image.root)


def test_bad_option_error(busybox_image):
    with pytest.raises(jupybox.UsageError):
        jupybox.run(BB, ["true"], root=busybox_image.root, memory="12xb")
    with pytest.raises(jupybox.UsageError):
        jupybox.run(BB, ["true"], root=busybox_image.root, colour="blue")


def daemon_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_the_daemon_sees_an_image_tag_move(busybox_image):
    """The daemon remembers resolved images: a tag that moves (or goes) must be seen at once."""
    from jupybox.dockerfile import build
    from jupybox.errors import ImageNotFound

    root = busybox_image.root

    def marker():
        r, w = os.pipe()
        c = jupybox.run("movingtag:1", ["cat", "/marker"], root=root, stdout=w, remove=True)
        os.close(w)
        assert c.wait(timeout=10) == 0
        out = os.read(r, 100)
        os.close(r)
        return out

    try:
        for version in (b"one", b"two"):
            build(dockerfile=f"FROM {BB}\nRUN echo {version.decode()} > /marker\n", tags=["movingtag:1"], root=root,
                  progress="quiet")
            assert marker() == version + b"\n"
    finally:
        jupybox.engine(root).store.remove("movingtag:1", force=True)
    with pytest.raises(ImageNotFound):
        jupybox.run("movingtag:1", ["true"], root=root, remove=True)


def _out(root, command, **options) -> tuple[int, str]:
    r, w = os.pipe()
    c = jupybox.run(BB, command, root=root, stdout=w, stderr=w, remove=True, **options)
    os.close(w)
    code = c.wait(timeout=10)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    return code, out.decode()


def test_a_repeated_spec_and_a_different_one_after_it(busybox_image):
    """The daemon prepares the next container like the last one, down to its user and plan (see
    engine.Prepared._arm): a repeat must behave like a first run, a change must be seen."""
    root = busybox_image.root
    a = dict(workdir="/made-for-a", user="0")
    script = ["sh", "-c", "echo $(id -u) $(pwd) $(hostname) $HOME; ls /"]
    runs = [_out(root, script, **a) for _ in range(3)]
    for code, out in runs:
        uid, cwd, host, home = out.splitlines()[0].split()
        assert (code, uid, cwd, home) == (0, "0", "/made-for-a", "/root")
    assert len({out.splitlines()[0].split()[2] for _, out in runs}) == 3  # each its own hostname
    # another user and workdir on a sandbox made for the spec above: nothing of it shows
    code, out = _out(root, script, workdir="/tmp", user="65534")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["65534", "/tmp"]
    assert "made-for-a" not in out.split()


def test_a_repeated_failing_spec_fails_the_same_way(busybox_image):
    root = busybox_image.root
    for _ in range(3):
        with pytest.raises(jupybox.errors.RuntimeFailure, match="unable to find user nosuch"):
            jupybox.run(BB, ["true"], root=root, user="nosuch", remove=True)
    assert _out(root, ["true"])[0] == 0


def test_a_reused_container_directory_shows_nothing_of_the_last_container(busybox_image):
    """A removed container's directory is emptied and reused (records._recycle): the next ones
    see the image, not what the last one wrote."""
    root = busybox_image.root
    code, _ = _out(root, ["sh", "-c", "mkdir /data && echo s > /data/secret && echo x > /etc/extra && chmod 700 /etc"])
    assert code == 0
    for _ in range(4):
        time.sleep(0.1)  # the removal, then the next prewarm, which takes the emptied directory
        code, out = _out(root, ["sh", "-c", "ls /data /etc/extra; stat -c %a /etc; test -e /etc/passwd && echo ok"])
        assert "No such file" in out and out.count("No such file") == 2
        assert out.split()[-2:] == ["755", "ok"]
    assert os.listdir(os.path.join(root, "spare"))  # the mechanism was used


def test_an_rm_container_is_gone_when_wait_returns(busybox_image):
    """As docker's run --rm: no listing shows it, its name is free, its object says exited."""
    root = busybox_image.root
    for _ in range(20):
        c = jupybox.run(BB, ["true"], root=root, remove=True, name="gone-at-once")
        assert c.wait(timeout=10) == 0
        assert c.status == "exited"
        assert c.id not in {x.id for x in jupybox.containers(all=True, root=root)}
        c.remove()  # nothing to do: its launcher removes it


def test_a_repeated_spec_whose_bind_source_went_fails_like_a_first_run(busybox_image, tmp_path):
    root = busybox_image.root
    src = tmp_path / "data"
    src.mkdir()
    for _ in range(2):  # the second run's sandbox is made for this very spec
        assert _out(root, ["ls", "/data"], volumes=[f"{src}:/data"])[0] == 0
    src.rmdir()
    with pytest.raises(jupybox.UsageError, match="bind source path does not exist"):
        jupybox.run(BB, ["ls", "/data"], root=root, volumes=[f"{src}:/data"], remove=True)


def test_200_sequential_rm_runs_leave_nothing(busybox_image):
    # warm the daemon up first so its socket and reader thread are part of the baseline
    jupybox.run(BB, ["true"], root=busybox_image.root, remove=True).wait()
    gc.collect()  # what earlier tests left for the collector must not close during the loop
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        assert jupybox.run(BB, ["true"], root=busybox_image.root, remove=True, memory="32m").wait() == 0
    assert len(os.listdir("/proc/self/fd")) <= fds_before
    engine = jupybox.engine(busybox_image.root)
    # the daemon answers wait() first and removes the last --rm container right after
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and [r for r in engine.records.all() if r.config["spec"]["remove"]]:
        time.sleep(0.01)
    assert [r for r in engine.records.all() if r.config["spec"]["remove"]] == []
    # what remains is the daemon's one prewarmed sandbox (its directory is staged, its PID 1 waits
    # for a plan): no cgroup of a finished container is left
    drv = engine.cgroups

    def finished_but_present():
        return [name for name in drv.list() if not engine._staged_alive(name) and not drv.open(name).pids()]

    # the last one is cleaned up right after its exit was reported, and a sandbox the pool discards
    # goes in its preparer's thread: on a loaded 2-vCPU VM that can take seconds
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and finished_but_present():
        time.sleep(0.01)
    assert finished_but_present() == []
    service = jupybox.launcher(busybox_image.root).service_pid
    from jupybox.service.pool import MAX_SIZE

    # the sandboxes made ahead: each a waiting PID 1. One made just now may still have its helper
    # (a zombie for the moment before the service reaps it).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(leaks.children(service)) > 2 * MAX_SIZE:
        time.sleep(0.01)
    assert len(leaks.children(service)) <= 2 * MAX_SIZE, leaks.children(service)
    assert not leaks.mounts([str(busybox_image.root)])
    from jupybox.service import stop

    jupybox.shutdown()
    assert stop(busybox_image.root)
    assert not daemon_alive(service)
    assert finished_but_present() == []
