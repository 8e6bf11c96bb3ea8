"""Bad input: FILE:LINE messages, exit codes, and nothing left behind (also after Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from jupybox.errors import BuildError

pytestmark = pytest.mark.root


@pytest.mark.parametrize("dockerfile,line,message", [
    ("FROM busybox\nBOGUS x\n", 2, "unknown instruction: BOGUS"),
    ("FROM busybox\nCOPY missing.txt /x\n", 2,
     "COPY missing.txt /x: file not found in build context or excluded by .dockerignore: stat missing.txt"),
    ("FROM busybox\nCOPY nomatch*.txt /x/\n", 2, "no source files were specified"),
    ("FROM busybox\nCOPY ../outside /x\n", 2, "forbidden path outside the build context"),
    ("FROM busybox\nCOPY a.txt b.txt /notadir\n", 2, "the destination must be a directory and end with a /"),
    ("FROM busybox\nCOPY --from=2 /x /y\n", 2, "invalid --from: stage index 2 does not exist"),
    ("FROM busybox AS a\nCOPY --from=a /x /y\n", 2, "a stage cannot copy from itself"),
    ("FROM busybox AS a\nFROM busybox\nCOPY --from=a /nothere /y\n", 3, "file not found in image"),
    ("FROM busybox\nCOPY --chown=nobody-here a.txt /\n", 2, "unable to find user nobody-here"),
    ("FROM busybox\nCOPY --chmod=64a a.txt /\n", 2,
     "invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"),
    ("FROM busybox\nCOPY --chmod=10000 a.txt /\n", 2,
     "invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777"),
    ("FROM busybox\nCOPY --chmod=u+q a.txt /\n", 2, "invalid chmod parameter: 'u+q': invalid syntax"),
    ("FROM busybox\nRUN exit 3\n", 2, "RUN exit 3: the command returned a non-zero code: 3"),
    ("FROM busybox\nRUN [\"/no/such/binary\"]\n", 2, "/no/such/binary: no such file or directory"),
    ("FROM busybox\nENV A=${B\n", 2, "ENV A=${B: failed to process"),
    ("FROM busybox\nEXPOSE 99999\n", 2, "invalid range specified for port"),
    ("FROM busybox\nSTOPSIGNAL SIGNOPE\n", 2, "invalid signal: SIGNOPE"),
    ("FROM --platform=linux/s390x busybox\n", 1, "only the host platform"),
    ("FROM busybox\nWORKDIR /bin/busybox\n", 2, "exists and is not a directory"),
    ("FROM busybox\nADD git@github.com:x/y.git /\n", 2, "ADD of a git source is not supported"),
    ("FROM busybox\nADD https://github.com/moby/buildkit.git#v0.10.1 /\n", 2, "is a git repository"),
    ("FROM busybox\nADD ftp://example.com/x /\n", 2, "only http(s) URLs are supported"),
    ("FROM busybox\nADD --checksum=sha256:00 a.txt /\n", 2, "checksum requires HTTP(S) or Git sources"),
    ("FROM busybox\nCOPY --checksum=sha256:00 a.txt /\n", 2, "unknown flag: --checksum"),
    ("FROM busybox\nRUN --mount=type=ssh true\n", 2, "type=ssh is not supported: jupybox build forwards no SSH"),
    ("FROM busybox\nRUN --mount=type=bind,source=nothere,target=/x true\n", 2,
     "mount source 'nothere' not found in the build context"),
    ("FROM busybox\nRUN --mount=type=cache,target=/ true\n", 2, 'invalid mount target "/"'),
    ("FROM busybox\nRUN --mount=type=tmpfs,target=/t,uid=1 true\n", 2, 'uid not allowed for "tmpfs" type mounts'),
    ("FROM busybox\nRUN --mount=type=cache,target=/c,sharing=all true\n", 2,
     'unsupported sharing value "all"'),
    ("FROM busybox\nCOPY https://example.com/x /\n", 2, "source can't be a URL for COPY"),
    ("FROM busybox\nONBUILD RUN echo\n\nFROM busybox\nRUN ${\n", 5, None),
])
def test_bad_input_messages(bb, dockerfile, line, message):
    bb.files({"a.txt": "a", "b.txt": "b"})
    before = bb.index()
    with pytest.raises(BuildError) as ei:
        bb.build(dockerfile, tags=["never"], pull=False)
    msg = str(ei.value)
    assert msg.startswith(f"Dockerfile:{line}: "), msg
    if message:
        assert message in msg
    assert "\n" not in msg
    assert bb.index() == before  # no image, no tag
    assert bb.leftovers() == []


def test_bad_from_image_is_reported_without_pulling(bb):
    with pytest.raises(BuildError, match=r"^Dockerfile:1: FROM nosuchimage: image 'nosuchimage' not found locally"):
        bb.build("FROM nosuchimage\nRUN true\n", pull=False)


def test_failing_run_reports_output_and_code(bb):
    with pytest.raises(BuildError) as ei:
        bb.build("FROM busybox\nRUN echo to-stdout; echo to-stderr >&2; exit 42\n")
    err = [e for e in bb.events if e.kind == "error"][0]
    assert err.output == ["to-stdout", "to-stderr"] and err.exit_code == 42
    assert "non-zero code: 42" in str(ei.value)
    assert bb.leftovers() == []


def test_failed_build_keeps_the_cache_of_finished_steps(bb):
    with pytest.raises(BuildError):
        bb.build("FROM busybox\nRUN echo ok > /ok\nRUN exit 1\n")
    bb.build("FROM busybox\nRUN echo ok > /ok\nRUN true\n")
    assert bb.cached() == [True, False]


@pytest.mark.timeout(120)  # a guard: the quadratic expansion took 18 s for 16 levels, 20 never ended
def test_arg_doubling_bomb_stops_at_the_expansion_limit(bb):
    """``ARG A1=${A0}${A0}`` ... : every value twice the last. The build stops with FILE:LINE at the
    first level over the limit, after keeping every level under it."""
    from jupybox.dockerfile.expand import MAX_GROWTH

    levels = 20
    lines = ["FROM scratch", "ARG A0=" + "x" * 16]
    lines += [f"ARG A{i}=${{A{i - 1}}}${{A{i - 1}}}" for i in range(1, levels + 1)]
    first_over = next(i for i in range(1, levels + 1) if 16 * 2 ** i > MAX_GROWTH)
    with pytest.raises(BuildError) as ei:
        bb.build("\n".join(lines) + "\n")
    msg = str(ei.value)
    assert msg.startswith(f"Dockerfile:{first_over + 2}: ARG A{first_over}=${{A{first_over - 1}}}"), msg
    assert msg.endswith(f"variables expand to more than {MAX_GROWTH} characters in one word")
    done = [e for e in bb.steps() if e.instruction.startswith("ARG ")]
    assert len(done) == first_over  # A0 .. A(first_over - 1), the last one MAX_GROWTH characters long
    assert bb.leftovers() == []


def jb(root, *args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env, **kw)


def test_cli_output_and_errors(bb):
    bb.files({"Dockerfile": "FROM busybox\nRUN echo building\nLABEL x=1\n"})
    r = jb(bb.root, "build", "-t", "cli:1", "--label", "by=cli", bb.ctx)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("[1/4] FROM busybox")
    assert lines[1] == "[2/4] RUN echo building" and lines[2] == "  | building" and lines[3].startswith("  => ")
    assert lines[4].startswith("[3/4] LABEL x=1  ") and lines[5].startswith('[4/4] LABEL "by"="cli"')
    assert lines[-2].startswith("Successfully built ") and lines[-1] == "Successfully tagged cli:1"
    r = jb(bb.root, "build", "-t", "cli:1", bb.ctx)
    assert "[2/3] RUN echo building  CACHED" in r.stdout
    r = jb(bb.root, "build", "-q", bb.ctx)
    assert r.returncode == 0 and r.stdout.startswith("sha256:") and len(r.stdout.strip()) == 71
    (bb.ctx / "Dockerfile").write_text("FROM busybox\nRUN echo hidden-output; exit 5\n")
    r = jb(bb.root, "build", "-q", bb.ctx)
    assert r.returncode == 1 and r.stdout == ""
    assert "hidden-output" in r.stderr  # quiet: the failing step's output is shown on failure
    assert r.stderr.strip().splitlines()[-1] == \
        "Dockerfile:2: RUN echo hidden-output; exit 5: the command returned a non-zero code: 5"
    (bb.ctx / "Dockerfile").write_text("FROM busybox\nFROBNICATE\n")
    r = jb(bb.root, "build", bb.ctx)
    assert r.returncode == 1 and r.stderr.strip() == "Dockerfile:2: unknown instruction: FROBNICATE"
    r = jb(bb.root, "build", "-f", "-", bb.ctx, input="FROM busybox\nLABEL stdin=1\n")
    assert r.returncode == 0, r.stderr
    r = jb(bb.root, "build", "--network", "bridge", bb.ctx)
    assert r.returncode == 125 and "not supported" in r.stderr
    r = jb(bb.root, "build", bb.ctx / "missing")
    assert r.returncode == 125
    assert bb.leftovers() == []


def _signal_in_a_run_step(bb, sig: int) -> int:
    """`jupybox build` of a RUN step that prints "started" then sleeps: ``sig`` once it printed;
    the build's exit status."""
    bb.files({"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    p = subprocess.Popen([sys.executable, "-m", "jupybox", "--root", str(bb.root), "build", "-t", "int",
                          "--progress", "plain", str(bb.ctx)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"), text=True)
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "started" not in seen and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            seen += line
        assert "started" in seen, seen
        p.send_signal(sig)
        return p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_ctrl_c_during_run_cleans_up(bb):
    before = bb.index()
    assert _signal_in_a_run_step(bb, signal.SIGINT) == 130
    assert bb.index() == before
    # the container (made by the service for the subprocess) is gone with its mounts and processes
    assert bb.leftovers() == []
    # (a sandbox the service keeps staged for its next container is not a container)
    from jupybox.runtime.engine import Engine

    assert Engine(bb.root).records.all() == []


def test_kill9_during_run_then_prune_leaves_a_whole_store(bb):
    """kill -9 of `jupybox build` in the middle of a RUN step: its container dies with its client,
    and `jupybox prune` leaves no container, mount, cgroup, process or half-written file; the same
    build then completes."""
    before = bb.index()
    assert _signal_in_a_run_step(bb, signal.SIGKILL) == -signal.SIGKILL
    cmd = [sys.executable, "-m", "jupybox", "--root", str(bb.root)]
    pruned = subprocess.run(cmd + ["prune", "-f"], capture_output=True, text=True, timeout=120)
    assert pruned.returncode == 0, pruned.stderr
    assert bb.index() == before
    assert bb.leftovers() == []
    tmp = bb.root / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []
    bb.files({"Dockerfile": "FROM busybox\nRUN echo started > /done\n"})
    done = subprocess.run(cmd + ["build", "-q", "-t", "k9", str(bb.ctx)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_daemon_runner_failure_cleans_up(bb):
    from jupybox.runtime.engine import Engine

    with pytest.raises(BuildError, match="non-zero code: 4"):
        bb.build("FROM busybox\nRUN echo x > /x; exit 4\n", runner="daemon")
    # (the store's service keeps one half-made record staged for its next container: not a container)
    assert Engine(bb.root).records.all() == []
