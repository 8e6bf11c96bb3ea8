"""cgroup limits seen from inside real containers, and docker's exit codes (root only)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.root]

BB = "busybox:latest"
ALLOC = "b = b'x' * (200 * 1024 * 1024); print('survived')"


def test_memory_limit_oom_kill_exit_137(runner):
    code, out, err, (state, rec) = runner.run("host", ["python3", "-c", ALLOC], memory="64m", keep=True)
    assert code == 137
    assert state.oom_killed is True
    assert "survived" not in out
    from jupybox.runtime.container import inspect_record

    info = inspect_record(runner.engine, rec)
    assert info["State"]["OOMKilled"] is True and info["State"]["ExitCode"] == 137
    assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024
    runner.engine.remove(rec)


def test_memory_limit_not_hit(runner):
    code, out, _, (state, _rec) = runner.run("host", ["python3", "-c", "b = b'x' * (20 << 20); print('ok')"],
                                             memory="256m")
    assert (code, out.strip(), state.oom_killed) == (0, "ok", False)


# the container's own cgroup files, where its namespace shows them: v1 (a hierarchy per controller)
# or v2 (one directory)
PIDS = "if [ -e /sys/fs/cgroup/pids.max ]; then d=/sys/fs/cgroup; else d=/sys/fs/cgroup/pids; fi; "
CPU = "if [ -e /sys/fs/cgroup/cpu.max ]; then q=$(cut -d' ' -f1 /sys/fs/cgroup/cpu.max); s=/sys/fs/cgroup/cpu.stat; " \
      "else q=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); s=/sys/fs/cgroup/cpu/cpu.stat; fi; "


def test_pids_limit_holds_a_fork_bomb(runner):
    code, out, err = runner.sh(
        # the loop runs in a subshell (a failed fork may end it); the reads are builtins: no fork needed
        BB, PIDS + "(for i in $(seq 40); do sleep 2 & done; wait) ; read c < $d/pids.current; "
                   "read m < $d/pids.max; echo $c $m", pids_limit=10)
    current, limit = out.split()[-2:]
    assert limit == "10"
    assert int(current) <= 10
    assert "can't fork" in err or "Resource temporarily unavailable" in err


def test_cpu_quota_throttles(runner):
    code, out, _ = runner.sh(
        BB, CPU + "timeout 1 sh -c 'while :; do :; done'; echo $q; grep nr_throttled $s", cpus="0.2")
    lines = out.split()
    assert lines[0] == "20000"  # of a 100000 us period, on v1 and v2 alike
    assert int(lines[-1]) > 0


@pytest.mark.parametrize("script,expected", [
    ("exit 3", 3),
    ("kill -TERM $$", 143),
    ("kill -KILL $$", 137),
])
def test_exit_codes(runner, script, expected):
    assert runner.sh(BB, script)[0] == expected


def test_pid1_without_init_ignores_signals_it_has_no_handler_for(runner):
    # the kernel protects a PID namespace's init: SIGKILL sent from inside is ignored
    assert runner.sh(BB, "kill -KILL $$; echo alive", init=False)[:2] == (0, "alive\n")


def test_exit_code_signal_without_init(cli):
    assert cli("run", "-d", "--name", "noinit", "--no-init", BB, "sleep", "60").returncode == 0
    try:
        assert cli("kill", "noinit").returncode == 0
        assert cli("wait", "noinit").stdout.strip() == "137"
    finally:
        cli("rm", "-f", "noinit")


def test_command_not_found_is_127(runner):
    from jupybox.errors import CommandNotFound

    with pytest.raises(CommandNotFound) as exc:
        runner.run(BB, ["no-such-command"])
    assert exc.value.exit_code == 127
    assert "no-such-command" in str(exc.value)


def test_not_executable_is_126(runner):
    from jupybox.errors import CommandNotExecutable

    with pytest.raises(CommandNotExecutable) as exc:
        runner.run(BB, ["/etc/passwd"])
    assert exc.value.exit_code == 126


def test_env_workdir_user_from_options(runner):
    code, out, _ = runner.sh(BB, "echo $FOO; pwd; id -u", env={"FOO": "bar"}, workdir="/srv/app", user="65534")
    assert out.split() == ["bar", "/srv/app", "65534"]


def test_unknown_user_is_an_error(runner):
    from jupybox.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure, match="unable to find user nosuch"):
        runner.run(BB, ["true"], user="nosuch")
