"""``jupybox run`` where no container can run: refused in one line (exit 125, nothing left behind),
unless ``--no-isolation``, which runs the command as a plain process with a warning.

"No container can run here" is made for real: the CLI runs under
``python -m jupybox.testing.nonamespaces``, a seccomp filter that refuses every namespace (as on
mybinder.org), even to root. Handshakes through pipes, never timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from jbx_cli_helpers import one_line, our_cgroups

pytestmark = [pytest.mark.root]

NONAMESPACES = [sys.executable, "-m", "jupybox.testing.nonamespaces", "--"]
REFUSAL = "`jupybox run --no-isolation` runs the command as a plain process, without isolation"


def jb(root, *args, confined=True, env=None, **kw):
    """The CLI, under the no-namespace filter unless ``confined=False``."""
    argv = (NONAMESPACES if confined else []) + [sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)]
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, env={**os.environ, **(env or {})}, timeout=120, **kw)


def test_the_filter_really_forbids_namespaces_even_to_root():
    r = subprocess.run(NONAMESPACES + ["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True, text=True)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    detect = "from jupybox.runtime import mode; print(mode.detect().name)"
    r = subprocess.run(NONAMESPACES + [sys.executable, "-c", detect], capture_output=True, text=True)
    assert r.stdout.strip() == "fallback", r.stderr
    assert subprocess.run(["unshare", "--mount", "true"]).returncode == 0  # outside the filter they can


@pytest.mark.leakcheck
@pytest.mark.parametrize("rm", [True, False])
def test_run_is_refused_in_one_line_and_leaves_nothing(jupybox_root, rm):
    before = our_cgroups()
    r = jb(jupybox_root, "run", *(["--rm"] if rm else []), "host", "true")
    assert r.returncode == 125
    line = one_line(r.stderr)
    assert line.startswith("jupybox: containers cannot run here: no namespace can be created here (")
    assert line.endswith("; " + REFUSAL)
    assert r.stdout == ""
    # no container record (not even a "Created" one that could never start), no cgroup, no mount
    assert list((jupybox_root / "containers").iterdir()) == []
    assert jb(jupybox_root, "ps", "-a", "-q", confined=False).stdout == ""
    assert our_cgroups() == before


def test_no_isolation_runs_a_plain_process_and_says_so(jupybox_root):
    r = jb(jupybox_root, "run", "--rm", "--no-isolation", "host", "sh", "-c",
           "echo $$; readlink /proc/self/ns/pid /proc/self/ns/mnt /proc/self/ns/net")
    assert r.returncode == 0, r.stderr
    pid, *namespaces = r.stdout.split()
    assert int(pid) > 1
    # the host's own namespaces: nothing isolated, and nothing claims it is
    assert namespaces == [os.readlink(f"/proc/self/ns/{ns}") for ns in ("pid", "mnt", "net")]
    warning = one_line(r.stderr)
    assert warning.startswith("jupybox: WARNING: no isolation (no namespace can be created here (")
    assert "running sh as a plain process on the host" in warning
    assert list((jupybox_root / "containers").iterdir()) == []


def test_no_isolation_passes_the_exit_code_env_and_workdir(jupybox_root, tmp_path):
    r = jb(jupybox_root, "run", "--no-isolation", "-e", "GREETING=hi", "-w", tmp_path, "host",
           "sh", "-c", 'echo "$GREETING from $(pwd)"; exit 7')
    assert r.returncode == 7
    assert r.stdout == f"hi from {tmp_path}\n"


def test_no_isolation_enforces_the_memory_limit(jupybox_root):
    grab = "b = bytearray({} << 20); print('allocated')"
    r = jb(jupybox_root, "run", "--no-isolation", "-m", "64m", "host", "python3", "-c", grab.format(256))
    assert r.returncode == 1 and "MemoryError" in r.stderr and r.stdout == ""
    assert "-m 64MiB per process (RLIMIT_DATA)" in r.stderr.splitlines()[0]
    r = jb(jupybox_root, "run", "--no-isolation", "-m", "64m", "host", "python3", "-c", grab.format(16))
    assert (r.returncode, r.stdout) == (0, "allocated\n"), r.stderr


def test_no_isolation_says_what_it_does_not_enforce(jupybox_root):
    r = jb(jupybox_root, "run", "--no-isolation", "--cpus", "0.5", "host", "true")
    assert r.returncode == 0
    assert "not enforced: --cpus 0.5 (no cgroup)" in one_line(r.stderr)


@pytest.mark.parametrize("args, words", [
    (["busybox", "true"], "image busybox needs isolation (a root filesystem of its own): on the host only "
                          "the host image can run, without isolation"),
    (["-v", "/tmp:/data", "host", "true"], "-v needs a mount namespace"),
    (["--network", "none", "host", "true"], "--network none needs a network namespace"),
    (["--user", "nobody", "host", "true"], "--user nobody needs a container"),
    (["-d", "host", "true"], "-d needs isolation"),
    (["host", "no-such-program"], 'exec: "no-such-program": executable file not found in $PATH'),
])
def test_no_isolation_refuses_what_it_cannot_honour(jupybox_root, args, words):
    r = jb(jupybox_root, "run", "--no-isolation", *args)
    assert r.returncode == (127 if "no-such-program" in args else 125)
    assert words in one_line(r.stderr)
    assert r.stdout == ""


def test_interrupt_kills_the_whole_tree(jupybox_root):
    """SIGINT to the CLI reaches the process group; what ignores it (a non-interactive shell's
    background job) is killed when the main process is gone, as a container's processes are."""
    p = subprocess.Popen(NONAMESPACES + [sys.executable, "-m", "jupybox", "--root", str(jupybox_root), "run",
                                         "--no-isolation", "host", "sh", "-c", "sleep 600 & echo $!; wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sleeper = int(p.stdout.readline())
        assert psutil.Process(sleeper).is_running()
        p.send_signal(signal.SIGINT)
        assert p.wait(60) == 128 + signal.SIGINT
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
    assert dead(sleeper)


def dead(pid: int, patience: float = 60.0) -> bool:
    """Gone or a zombie (dead, waiting for whoever adopted it), within ``patience`` seconds."""
    import time

    deadline = time.monotonic() + patience
    while True:
        try:
            proc = psutil.Process(pid)
            status = proc.status()
            if status == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            print(f"still there: {pid} {status} parent {proc.ppid()} {proc.cmdline()}")
            return False
        time.sleep(0.05)


def test_forced_fallback_needs_no_probe_and_no_filter(jupybox_root):
    r = jb(jupybox_root, "run", "--rm", "host", "true", confined=False, env={"JUPYBOX_ISOLATION": "none"})
    assert r.returncode == 125
    assert one_line(r.stderr) == ("jupybox: containers cannot run here: JUPYBOX_ISOLATION=none asks for no isolation; "
                                  + REFUSAL)
    r = jb(jupybox_root, "run", "--no-isolation", "host", "echo", "plain", confined=False,
           env={"JUPYBOX_ISOLATION": "none"})
    assert (r.returncode, r.stdout) == (0, "plain\n")


def test_where_containers_run_no_isolation_still_isolates(jupybox_root):
    r = jb(jupybox_root, "run", "--rm", "--no-isolation", "host", "readlink", "/proc/self/ns/pid", confined=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() != os.readlink("/proc/self/ns/pid")  # a real container: its own PID namespace
    assert "WARNING" not in r.stderr


def test_the_root_fast_path_does_not_probe(jupybox_root):
    """An ordinary `run` never imports the mode detection (its probe is a process of its own)."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "jupybox", "--root", str(jupybox_root), "run",
                        "--rm", "host", "true"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "import time:" in r.stderr
    assert "jupybox.runtime.mode" not in r.stderr and "jupybox.linux.probe" not in r.stderr


def test_start_of_a_created_container_says_why_in_one_line(jupybox_root):
    cid = jb(jupybox_root, "create", "host", "true").stdout.strip()
    assert cid
    r = jb(jupybox_root, "start", "-a", cid)
    assert r.returncode == 1  # docker's start: what its daemon refuses exits 1 (run's is 125)
    line = one_line(r.stderr)
    assert line.startswith("jupybox: containers cannot run here: no namespace can be created here ("), line
    jb(jupybox_root, "rm", "-f", cid, confined=False)
