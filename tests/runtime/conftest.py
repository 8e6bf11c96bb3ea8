"""Helpers for runtime tests: run a container in the session store and collect its output."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from jupybox.runtime.engine import Engine
from jupybox.runtime.options import make_spec


class Runner:
    """Runs through the store's service (as the API and the CLI do), output captured through files."""

    def __init__(self, root):
        self.engine = Engine(root)
        self.root = root

    def run(self, image, command, **opts):
        """-> (exit_code, stdout, stderr, (state, record)); the container is removed unless keep=True."""
        import jupybox

        keep = opts.pop("keep", False)
        spec = make_spec(image, command, **opts)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            devnull = os.open("/dev/null", os.O_RDONLY)
            try:
                c = jupybox.run(image, command, root=self.root, stdin=devnull, stdout=out.fileno(),
                                stderr=err.fileno(), **opts)
            finally:
                os.close(devnull)
            try:
                c.wait()
            except BaseException:
                if not keep:
                    try:
                        c.remove(force=True)
                    except Exception:
                        pass
                raise
            state = c.state() if not spec.remove else _result_state(c.result())
            rec = c._record
            out.seek(0)
            err.seek(0)
            o, e = out.read().decode(), err.read().decode()
        if not keep and not spec.remove:
            c.remove()
        return state.exit_code, o, e, (state, rec)

    def sh(self, image, script, **opts):
        code, out, err, _ = self.run(image, ["/bin/sh", "-c", script], **opts)
        return code, out, err


def _result_state(result: dict):
    """The exit of an --rm container (gone by now) as a State."""
    from jupybox.runtime.state import State, Status

    return State(status=Status.EXITED, exit_code=result.get("exit_code"), oom_killed=bool(result.get("oom_killed")),
                 extra=result.get("extra") or {}, error=result.get("error") or "")


@pytest.fixture
def runner(busybox_image):
    return Runner(busybox_image.root)


def jb(root, *args, input=None, timeout=60):
    """The CLI as a user runs it."""
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          input=input, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(busybox_image):
    def run(*args, **kw):
        return jb(busybox_image.root, *args, **kw)

    run.root = busybox_image.root
    return run
