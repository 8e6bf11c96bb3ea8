"""Helpers for the CLI tests (imported by name: conftest.py puts this directory on sys.path)."""

from __future__ import annotations

import os

from jupybox.testing.leaks import cgroups


def one_line(stderr: str) -> str:
    """The one line a refusal prints (fails the test on more or none)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def our_cgroups() -> set[str]:
    """This test run's container cgroups (under $JUPYBOX_CGROUP_PARENT, set by tests/conftest.py)."""
    parent = os.environ["JUPYBOX_CGROUP_PARENT"]
    return {c for c in cgroups(keyword=parent) if os.path.basename(c) != parent}
