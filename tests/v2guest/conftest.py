"""The v2 guest's boots, each run once per session when its first test needs it, and their wall times
in the terminal summary."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.v2guest import vm
from tests.v2guest.initramfs import REPO

_outcomes: dict[str, vm.Outcome] = {}


def _out_dir(boot: str) -> Path:
    """Kept after the run (console log, guest artifacts): next to the suite's other artifacts."""
    base = Path(os.environ.get("JUPYBOX_TEST_ARTIFACTS") or REPO / "test-artifacts")
    return base / f"v2guest-{re.sub(r'[^A-Za-z0-9_.-]+', '_', boot)}"


@pytest.fixture(scope="session")
def guest():
    """guest(boot) -> vm.Outcome: boots once per boot and session."""

    def get(boot: vm.Boot) -> vm.Outcome:
        if boot.name not in _outcomes:
            out = _out_dir(boot.name)
            shutil.rmtree(out, ignore_errors=True)
            _outcomes[boot.name] = vm.run(boot, out)
        return _outcomes[boot.name]

    return get


def pytest_terminal_summary(terminalreporter):
    for name, o in _outcomes.items():
        s = o.summary
        counts: dict[str, int] = {}
        for rec in o.results.values():
            counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
        terminalreporter.write_line(
            f"v2 guest {name}: kernel {s.get('kernel', '?')}, {o.wall:.0f} s in all: boot "
            f"{s.get('uptime_at_start', 0):.0f} s, pytest {s.get('pytest_seconds', 0):.0f} s (start and collection "
            f"{s.get('collection_seconds', 0):.0f} s) "
            f"({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}); log {o.out / 'console.log'}")
