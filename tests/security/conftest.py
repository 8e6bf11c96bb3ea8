"""Attacks, run for real from inside containers: each test is one thing a hostile container (or a
hostile image) tries, and asserts that it fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jupybox.testing import import_image


@pytest.fixture
def store(jupybox_root, busybox_tar):
    """A fresh store with busybox (and the built-in host image, which has python3)."""
    import_image(jupybox_root, busybox_tar, "busybox:latest")
    return jupybox_root


def jb(root, *args, input=None, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          input=input, capture_output=True, text=True, timeout=timeout, env=env)
