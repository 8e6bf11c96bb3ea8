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
    """In-process runs (this small pytest process is the monitor), output captured through files."""

    def __init__(self, root):
        self.engine = Engine(root)
        self.root = root

    def run(self, image, command, **opts):
        """-> (exit_code, stdout, stderr, state); the container is removed unless keep=True."""
        keep = opts.pop("keep", False)
        spec = make_spec(image, command, **opts)
        rec = self.engine.create(spec)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            devnull = os.open("/dev/null", os.O_RDONLY)
            try:
                state = self.engine.run_attached(rec, (devnull, out.fileno(), err.fileno()))
            except BaseException:
                if not keep:
                    try:
                        self.engine.remove(rec, force=True)
                    except Exception:
                        pass
                raise
            finally:
                os.close(devnull)
            out.seek(0)
            err.seek(0)
            o, e = out.read().decode(), err.read().decode()
        if not keep and not spec.remove:
            self.engine.remove(rec)
        return state.exit_code, o, e, (state, rec)

    def sh(self, image, script, **opts):
        code, out, err, _ = self.run(image, ["/bin/sh", "-c", script], **opts)
        return code, out, err


@pytest.fixture
def runner(busybox_image):
    return Runner(busybox_image.root)


def jb(root, *args, input=None, timeout=60):
    """The CLI as a user runs it."""
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          input=input, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(busybox_image):
    return lambda *args, **kw: jb(busybox_image.root, *args, **kw)
