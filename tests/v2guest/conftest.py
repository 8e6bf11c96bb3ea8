"""The v2 guest's boots, each run once per session, and their wall times in the terminal summary.

When the session runs other tests too, the boots start as soon as the tests are collected and run
beside the rest of the suite: a guest is CPU-bound emulation, and on a 2-vCPU VM about half of
the suite's CPU time is idle (it waits on containers, kernels, servers); qemu runs at the lowest
priority (vm.NICE), so the guests take that idle time rather than the suite's. Their tests, at
the end of the suite, then read the results. ``JUPYBOX_V2GUEST_EARLY=0`` boots when the first guest test needs it instead."""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.v2guest import selection, vm
from tests.v2guest.initramfs import REPO

_outcomes: dict[str, vm.Outcome] = {}
_early: dict[str, concurrent.futures.Future] = {}
_started: list[vm.Booting] = []


def _boot(boot: vm.Boot) -> vm.Booting:
    out = _out_dir(boot.name)
    shutil.rmtree(out, ignore_errors=True)
    booting = vm.start(boot, out)
    _started.append(booting)
    return booting


def pytest_collection_finish(session):
    if os.environ.get("JUPYBOX_V2GUEST_EARLY", "1") == "0" or vm.unavailable() is not None:
        return
    names, others = set(), False
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if not item.nodeid.startswith("tests/v2guest/"):
            others = True
        elif callspec is not None and "boot" in callspec.params:
            names.add(callspec.params["boot"])
    if not names or not others:
        return
    # qemu starts here, before any test: the tests' leak checks see it in their snapshot before
    # and after, never as a process a test left behind; a thread waits for it
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="v2guest")
    for boot in selection.BOOTS:
        if boot.name in names and vm.boot_unavailable(boot) is None:
            _early[boot.name] = pool.submit(vm.finish, _boot(boot))
    pool.shutdown(wait=False)


def pytest_sessionfinish(session):
    for booting in _started:  # an interrupted or -x session does not wait for a guest nobody reads
        if booting.proc.poll() is None:
            booting.proc.kill()


def _out_dir(boot: str) -> Path:
    """Kept after the run (console log, guest artifacts): next to the suite's other artifacts."""
    base = Path(os.environ.get("JUPYBOX_TEST_ARTIFACTS") or REPO / "test-artifacts")
    return base / f"v2guest-{re.sub(r'[^A-Za-z0-9_.-]+', '_', boot)}"


@pytest.fixture(scope="session")
def guest():
    """guest(boot) -> vm.Outcome: boots once per boot and session."""

    def get(boot: vm.Boot) -> vm.Outcome:
        if boot.name not in _outcomes:
            early = _early.get(boot.name)
            _outcomes[boot.name] = early.result() if early is not None else vm.finish(_boot(boot))
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
