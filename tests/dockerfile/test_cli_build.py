"""``jupybox build`` and ``jupybox builder`` as a user runs them (the console entry point in a
subprocess): the flags docker's build has, and ``image inspect`` of what was built."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

pytestmark = pytest.mark.root


def jb(root, *args, env=None, **kw):
    full = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          capture_output=True, timeout=180, env=full, **kw)


def test_image_inspect_shows_shell_healthcheck_and_onbuild(bb):
    bb.build('FROM busybox\nSHELL ["/bin/sh", "-ec"]\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN echo hi\n',
             tags=["withall:1"])
    r = jb(bb.root, "image", "inspect", "withall:1")
    cfg = json.loads(r.stdout)[0]["Config"]
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert cfg["OnBuild"] == ["RUN echo hi"]
    cfg = json.loads(jb(bb.root, "image", "inspect", "busybox").stdout)[0]["Config"]
    assert cfg["OnBuild"] is None and "Healthcheck" not in cfg and "Shell" not in cfg


def test_build_flags(bb, tmp_path):
    bb.files({"Dockerfile": "FROM busybox AS first\n"
                            "ARG FROM_ENV\n"
                            "ARG UNSET_IN_ENV=default\n"
                            "RUN echo \"$FROM_ENV $UNSET_IN_ENV\" > /args\n"
                            "FROM busybox AS second\n"
                            "RUN echo second > /second\n"})
    iid = tmp_path / "iid"
    r = jb(bb.root, "build", "--build-arg", "FROM_ENV", "--build-arg", "UNSET_IN_ENV", "--label", "k=v",
           "--target", "first", "--iidfile", iid, "-t", "flags:1", "--progress", "plain", bb.ctx,
           env={"FROM_ENV": "from-the-environment"})
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "[first 4/5] RUN echo" in out and "second" not in out  # the target, and what it needs only
    img = bb.store.resolve("flags:1")
    assert iid.read_text() == img.id
    assert img.config["config"]["Labels"] == {"k": "v"}
    assert bb.run(img.id, "cat /args") == (0, "from-the-environment default\n")


def test_outputs(bb, tmp_path):
    bb.files({"Dockerfile": "FROM scratch\nCOPY a.txt /dir/a.txt\n", "a.txt": "hello\n"})
    r = jb(bb.root, "build", "-o", "type=tar,dest=-", bb.ctx)
    assert r.returncode == 0, r.stderr
    assert b"Successfully built" in r.stderr  # stdout carries the tar, and only it
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert {m.name: m.type for m in tar} == {"dir": tarfile.DIRTYPE, "dir/a.txt": tarfile.REGTYPE}
        assert tar.extractfile("dir/a.txt").read() == b"hello\n"
    dest = tmp_path / "exported"
    r = jb(bb.root, "build", "-o", f"type=local,dest={dest}", "-o", f"type=tar,dest={tmp_path / 'x.tar'}", bb.ctx)
    assert r.returncode == 0, r.stderr
    assert (dest / "dir" / "a.txt").read_text() == "hello\n"
    assert tarfile.is_tarfile(tmp_path / "x.tar")
    r = jb(bb.root, "build", "-o", "type=registry,dest=x", bb.ctx)
    assert r.returncode == 125 and b"output type 'registry' is not supported" in r.stderr


def test_secret_flags(bb, tmp_path):
    (tmp_path / "token").write_text("from-a-file")
    bb.files({"Dockerfile": "FROM busybox\n"
                            "RUN --mount=type=secret,id=a --mount=type=secret,id=b,env=B "
                            "[ \"$(cat /run/secrets/a)\" = from-a-file ] && [ \"$B\" = from-env ]\n"})
    r = jb(bb.root, "build", "--secret", f"id=a,src={tmp_path / 'token'}", "--secret", "id=b,env=SECRET_B", bb.ctx,
           env={"SECRET_B": "from-env"})
    assert r.returncode == 0, r.stderr + r.stdout
    r = jb(bb.root, "build", "--secret", "id=a,src=/no/such/file", bb.ctx)
    assert r.returncode == 125 and r.stderr.decode().strip() == "jupybox: secret a: No such file or directory: /no/such/file"


def test_progress_tty_rewrites_run_output_in_place():
    from jupybox.dockerfile.events import StepEvent
    from jupybox.dockerfile.progress import CLEAR_LINE, Printer

    out, err = io.StringIO(), io.StringIO()
    p = Printer("tty", out, err)
    base = dict(stage="", step=2, total=2, instruction="RUN make")
    p(StepEvent("start", **base))
    for line in ("compiling a", "compiling b"):
        p(StepEvent("output", line=line, **base))
    p(StepEvent("end", duration=1.5, **base))
    assert out.getvalue() == (f"[2/2] RUN make\n{CLEAR_LINE}  | compiling a{CLEAR_LINE}  | compiling b"
                              f"{CLEAR_LINE}  => 1.50s\n")
    p(StepEvent("start", **base))
    p(StepEvent("output", line="boom", **base))
    p(StepEvent("error", message="Dockerfile:2: failed", output=["line 1", "boom"], **base))
    assert err.getvalue() == "[2/2] RUN make\n  | line 1\n  | boom\n"  # the failed step's output, whole
    assert Printer("auto", io.StringIO()).mode == "plain"  # not a terminal


def test_builder_du_and_prune(bb):
    bb.files({"Dockerfile": "FROM busybox\nRUN --mount=type=cache,target=/var/cache/x,id=mine "
                            "dd if=/dev/zero of=/var/cache/x/blob bs=1k count=64 2>/dev/null\n"})
    assert jb(bb.root, "build", bb.ctx).returncode == 0
    r = jb(bb.root, "builder", "du")
    assert r.returncode == 0 and "mine" in r.stdout.decode()
    r = jb(bb.root, "builder", "prune", "-f")
    assert r.returncode == 0
    text = r.stdout.decode()
    assert "cache mount mine" in text and text.strip().splitlines()[-1] != "Total:\t0B"
    assert os.listdir(bb.root / "build-cache" / "mounts") == []
    assert not list((bb.root / "build-cache" / "keys").rglob("*.json"))
    r = jb(bb.root, "build", bb.ctx)  # the step cache went too: it runs again
    assert r.returncode == 0 and "CACHED" not in r.stdout.decode()


def test_pull_always_gets_the_registry_image(bb, registry):
    """``--pull``: the base image comes from its registry even when a local one has the name."""
    ref = f"{registry.host}/base:1"
    bb.build("FROM busybox\nRUN echo registry > /origin\n", tags=[ref])
    assert jb(bb.root, "push", ref).returncode == 0
    bb.build("FROM busybox\nRUN echo local > /origin\n", tags=[ref])  # the local tag moves
    bb.files({"Dockerfile": f"FROM {ref}\nRUN cat /origin > /seen\n"})
    r = jb(bb.root, "build", "-t", "pulled", bb.ctx)
    assert r.returncode == 0 and bb.run("pulled", "cat /seen") == (0, "local\n")
    r = jb(bb.root, "build", "--pull", "-t", "pulled", bb.ctx)
    assert r.returncode == 0, r.stderr
    assert bb.run("pulled", "cat /seen") == (0, "registry\n")
