"""Fallback mode's plain process (``runtime.unisolated``): what it runs, the rlimits it sets before
the command runs, what it refuses, its stats, and that a kill (or the main process's exit) takes
the whole tree along.

These run in the test process directly: a plain process needs no namespace, so nothing here
depends on the mode. Handshakes through pipes, never timing.
"""

from __future__ import annotations

import os
import pwd
import signal
import sys

import psutil
import pytest

from jupybox import errors
from jupybox.runtime import unisolated

MiB = 1 << 20


def _reader(fd: int):
    """Lines from a pipe, as they come."""
    f = os.fdopen(fd, "r", buffering=1)
    return f, iter(f.readline, "")


def start(command, **options):
    """-> (process, stdout lines iterator, stdout file); stderr goes to a pipe read at the end."""
    r, w = os.pipe()
    try:
        p = unisolated.run("host", command, stdout=w, stderr=w, **options)
    finally:
        os.close(w)
    f, lines = _reader(r)
    return p, lines, f


def output(command, **options) -> tuple[int, str]:
    p, _, f = start(command, **options)
    with f:
        text = f.read()
    return p.wait(60), text


def gone(pid: int) -> bool:
    """Dead (a zombie waiting for its reaper counts as dead)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int) -> bool:
    try:
        psutil.Process(pid).wait(30)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return gone(pid)
    return True


# -- what runs -----------------------------------------------------------------------------------------
def test_runs_the_command_as_a_plain_process_with_the_host_images_environment():
    code, text = output(["sh", "-c", 'echo "$$ $(cat /proc/self/stat | cut -d" " -f6) $HOME $PWD"; '
                         'echo "$PATH"; readlink /proc/self/ns/pid /proc/self/ns/mnt; exit 3'],
                        env=["GREETING=hi"], workdir="/tmp")
    assert code == 3
    first, path, pidns, mntns = text.splitlines()
    pid, sid, home, cwd = first.split()
    assert sid == pid  # its own session (and process group): a kill reaches all of it
    assert cwd == "/tmp"
    assert home == pwd.getpwuid(os.geteuid()).pw_dir
    assert path.split(":")[0] == os.path.join(sys.prefix, "bin")  # the host image's PATH
    # no isolation at all, and nothing pretends otherwise: our own namespaces
    assert pidns == os.readlink("/proc/self/ns/pid") and mntns == os.readlink("/proc/self/ns/mnt")


def test_the_environment_is_the_images_not_the_callers(monkeypatch):
    monkeypatch.setenv("JBX_SHOULD_NOT_LEAK", "1")
    code, text = output(["sh", "-c", 'echo "${JBX_SHOULD_NOT_LEAK:-unset} $GREETING"'], env=["GREETING=hi"])
    assert (code, text) == (0, "unset hi\n")


def test_command_not_found_and_not_executable_are_the_runtimes_errors(tmp_path):
    with pytest.raises(errors.CommandNotFound, match="no-such-program"):
        unisolated.run("host", ["no-such-program"])
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(errors.CommandNotExecutable):
        unisolated.run("host", [str(script)])
    with pytest.raises(errors.UsageError, match="working directory"):
        unisolated.run("host", ["true"], workdir=str(tmp_path / "missing"))


# -- what it refuses, and what it only reports --------------------------------------------------------------
@pytest.mark.parametrize("image", ["busybox", "alpine:3.19", "docker.io/library/debian:bookworm"])
def test_only_the_host_image_can_run(image):
    with pytest.raises(errors.UsageError) as e:
        unisolated.prepare(image, ["true"])
    assert str(e.value) == (f"image {image} needs isolation (a root filesystem of its own): on the host only "
                            f"the host image can run, without isolation")


@pytest.mark.parametrize("options, flag", [
    ({"volumes": ["/tmp:/data"]}, "-v"),
    ({"tmpfs": ["/scratch"]}, "--tmpfs"),
    ({"network": "none"}, "--network none"),
    ({"network": "bridge"}, "--network bridge"),
    ({"publish": ["8080:80"]}, "-p"),
    ({"network_aliases": ["db"]}, "--network-alias"),
    ({"dns": ["1.1.1.1"]}, "--dns"),
    ({"user": "nobody"}, "--user nobody"),
    ({"hostname": "box"}, "--hostname box"),
    ({"read_only": True}, "--read-only"),
    ({"privileged": True}, "--privileged"),
    ({"cap_drop": ["NET_RAW"]}, "--cap-drop"),
])
def test_what_needs_a_container_is_a_clear_error(options, flag):
    with pytest.raises(errors.UsageError) as e:
        unisolated.prepare("host", ["true"], **options)
    assert str(e.value).startswith(f"{flag} needs ") and "without isolation it cannot be honoured" in str(e.value)


def test_harmless_options_are_accepted_and_loose_limits_are_reported():
    plan = unisolated.prepare("host", ["true"], name="job", remove=True, init=False, labels={"a": "b"},
                              network="host", cpus="0.5", cpu_shares=512, memory="64m", memory_swap="128m",
                              pids_limit=50)
    assert "--cpus 0.5 (no cgroup)" in plan.not_enforced
    assert "--cpu-shares 512 (no cgroup)" in plan.not_enforced
    assert "--memory-swap (no cgroup)" in plan.not_enforced
    line = plan.describe()
    assert "-m 64MiB per process (RLIMIT_DATA)" in line and "not enforced: --cpus 0.5" in line
    if os.geteuid() == 0:  # the kernel does not apply RLIMIT_NPROC to root: said, not pretended
        assert plan.pids is None and "nproc" not in plan.rlimits
        assert any(n.startswith("--pids-limit 50") for n in plan.not_enforced)
    else:
        assert plan.pids == 50 and plan.rlimits["nproc"] > 50


def test_network_left_out_means_the_hosts_whatever_the_default(monkeypatch):
    monkeypatch.setenv("JUPYBOX_DEFAULT_NETWORK", "none")
    assert unisolated.prepare("host", ["true"]).spec.network == "host"


# -- limits, set before the command runs -------------------------------------------------------------------
@pytest.mark.parametrize("through", ["prlimit", "python shim"])
def test_memory_limit_is_rlimit_data_from_the_first_instruction(through, monkeypatch):
    if through == "prlimit" and not unisolated.shutil.which("prlimit"):
        pytest.skip("util-linux prlimit is not installed")
    if through == "python shim":
        monkeypatch.setattr(unisolated.shutil, "which", lambda name, *a, **k: None)
    # `ulimit -d` is the shell's own first view of its limits: set before it ran, not after
    p, _, f = start(["sh", "-c", "ulimit -d; echo $$"], memory="64m")
    with f:
        kib, pid = f.read().split()
    assert p.wait(60) == 0
    assert int(kib) == 64 * 1024
    assert int(pid) == p.pid  # prlimit (or the shim) exec'ed the command: the pid watched is the command's


def test_allocating_beyond_the_memory_limit_fails_within_it_works():
    code, text = output([sys.executable, "-c", "b = bytearray(256 << 20); print('allocated')"], memory="64m")
    assert code == 1 and "MemoryError" in text and "allocated" not in text
    code, text = output([sys.executable, "-c", "b = bytearray(16 << 20); print('allocated')"], memory="64m")
    assert (code, text) == (0, "allocated\n")


def test_pids_limit_as_a_user_counts_from_the_users_tasks_at_the_start():
    """As a normal user the pids limit is RLIMIT_NPROC = the user's tasks + the limit: a cell that
    starts threads without end is stopped near the limit, not at the user's whole budget."""
    if os.geteuid() != 0:
        pytest.skip("makes a user: needs root")
    try:
        from jupybox.testing.rootless import unprivileged_user
    except ImportError:
        pytest.skip("jupybox.testing.rootless is not available")
    cell = ("import threading\n"
            "stop = threading.Event(); n = 0\n"
            "try:\n"
            "    for n in range(500):\n"
            "        threading.Thread(target=stop.wait, daemon=True).start()\n"
            "except RuntimeError:\n"
            "    pass\n"
            "print('started', n); stop.set()\n")
    code = ("import sys\n"
            "from jupybox.runtime import unisolated\n"
            f"p = unisolated.run('host', [sys.executable, '-c', {cell!r}], pids_limit=20, stdout=1, stderr=2)\n"
            "print('nproc', p.plan.rlimits['nproc'])\n"
            "sys.exit(p.wait(60))\n")
    with unprivileged_user(subids=False) as user:
        r = user.python(code)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split() for line in r.stdout.splitlines())
    assert int(lines["nproc"]) > 20
    assert 1 <= int(lines["started"]) < 20


# -- stats, kill, the end -------------------------------------------------------------------------------------
def test_stats_have_the_cgroup_shape_and_follow_the_tree():
    from jupybox.cgroups.base import CgroupStats

    script = ("import os, sys, subprocess, time\n"
              "blob = bytearray(48 << 20)\n"
              "for i in range(0, len(blob), 4096): blob[i] = 1\n"  # resident, not just reserved
              "child = subprocess.Popen(['sleep', '600'])\n"
              "t = time.process_time()\n"
              "while time.process_time() - t < 0.3: pass\n"  # 0.3 s of CPU, measured by the process itself
              "print('ready', child.pid, flush=True)\n"
              "sys.stdin.readline()\n")
    r, w = os.pipe()
    p, lines, f = start([sys.executable, "-c", script], memory="512m", stdin=r)
    os.close(r)
    with f:
        ready = next(lines).split()
        assert ready[0] == "ready"
        st = p.stats()
        assert isinstance(st, CgroupStats)
        assert st.memory_current >= 48 * MiB
        assert st.memory_peak >= st.memory_current
        assert st.memory_limit == 512 * MiB
        assert st.cpu_usage_ns >= 0.3e9
        assert st.pids_current >= 2  # python and its sleep
        assert st.oom_kills == 0 and st.cpu_quota is None
        os.write(w, b"go\n")
        os.close(w)
        assert p.wait(60) == 0
    assert wait_gone(int(ready[1]))  # left running by the main process: killed with it, as in a container
    with pytest.raises(errors.StateError):
        p.stats()
    res = p.result()
    assert res["exit_code"] == 0 and res["oom_killed"] is False
    assert res["extra"]["memory_peak"] >= 48 * MiB and res["extra"]["cpu_usage_ns"] >= 0.3e9
    assert res["extra"]["isolated"] is False


def test_kill_reaches_the_whole_tree_even_a_process_that_left_the_group():
    script = ("sleep 600 & echo bg $!\n"
              "setsid sleep 600 & echo escaped $!\n"  # its own session: out of the process group
              "echo ready; wait\n")
    p, lines, f = start(["sh", "-c", script])
    with f:
        got = {}
        for line in lines:
            if line == "ready\n":
                break
            k, v = line.split()
            got[k] = int(v)
        # the sampler sees the tree; a process it has seen is killed even outside the group
        assert psutil.Process(got["escaped"]).is_running()
        p.stats()
        p.kill(signal.SIGKILL)
        assert p.wait(60) == 128 + signal.SIGKILL
    assert wait_gone(got["bg"]) and wait_gone(got["escaped"])
    with pytest.raises(errors.StateError):
        p.kill(signal.SIGTERM)


def test_sigint_reaches_the_group_like_a_terminals_ctrl_c():
    script = ("import signal, sys, time\n"
              "try:\n"
              "    print('armed', flush=True)\n"
              "    time.sleep(600)\n"
              "except KeyboardInterrupt:\n"
              "    print('interrupted', flush=True); sys.exit(42)\n")
    p, lines, f = start([sys.executable, "-c", script])
    with f:
        assert next(lines) == "armed\n"
        p.kill("SIGINT")
        assert next(lines) == "interrupted\n"
        assert p.wait(60) == 42


def test_remove_is_nothing_for_an_exited_process_and_a_kill_for_a_running_one():
    p, lines, f = start(["sh", "-c", "echo up; sleep 600"])
    with f:
        assert next(lines) == "up\n"
        with pytest.raises(errors.Conflict):
            p.remove()
        p.remove(force=True)
        assert p.status == "exited" and p.exit_code == 128 + signal.SIGKILL
    p.remove()  # nothing was kept
