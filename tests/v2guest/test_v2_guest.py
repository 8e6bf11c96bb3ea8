"""The suite's cgroup v2 path on a real v2 kernel: Debian's kernel booted under qemu (software
emulation: no KVM needed) with a pure cgroup2 hierarchy, running the tests of tests/v2guest/selection.py
as root inside. One test here per test there, with its outcome and, on failure, its report and
captured output; then, per boot, that the kernel was pure v2 and that nothing was left in its cgroup
tree. How the guest is made: tests/v2guest/vm.py and scripts/v2guest/init.sh.
"""

from __future__ import annotations

import pytest

from tests.v2guest import selection, vm

WHY_NOT = vm.unavailable()
BOOTS = {b.name: b for b in selection.BOOTS}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(WHY_NOT is not None, reason=f"no v2 guest: {WHY_NOT}"),
    # the first test of a boot waits for the whole boot
    pytest.mark.timeout(vm.DEFAULT_TIMEOUT + 120),
]


def pytest_generate_tests(metafunc):
    if "boot" in metafunc.fixturenames and "nodeid" in metafunc.fixturenames:
        params = []
        if WHY_NOT is None:
            try:
                expanded = selection.expand(selection.BOOTS)
            except RuntimeError as e:  # a selected test is gone: say so here, not as a collection error
                expanded = {name: [f"collection failed: {e}"] for name in BOOTS}
            for name, nodeids in expanded.items():
                for nodeid in nodeids:
                    reason = selection.KNOWN_FAILURES.get(nodeid)
                    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
                    params.append(pytest.param(name, nodeid, id=f"{name}:{nodeid}", marks=marks))
        metafunc.parametrize(("boot", "nodeid"), params)
    elif "boot" in metafunc.fixturenames:
        metafunc.parametrize("boot", list(BOOTS))


@pytest.fixture
def outcome(guest, boot) -> vm.Outcome:
    """The boot's results (the first test of a boot waits for it in its setup)."""
    return guest(BOOTS[boot])


def _booted(outcome: vm.Outcome) -> vm.Outcome:
    problem = outcome.problem()
    if problem:
        pytest.fail(f"{problem}\n--- the console's end ({outcome.out / 'console.log'}) ---\n"
                    f"{outcome.console_tail()}", pytrace=False)
    return outcome


_WHY_NOT_BOOT: dict[str, str | None] = {}


def _available(boot: str) -> None:
    if boot not in _WHY_NOT_BOOT:  # once per boot, not once per test
        _WHY_NOT_BOOT[boot] = vm.boot_unavailable(BOOTS[boot])
    why = _WHY_NOT_BOOT[boot]
    if why is not None:
        pytest.skip(f"no {boot} boot: {why}")


def test_in_the_guest(request, boot, nodeid):
    if nodeid.startswith("collection failed: "):  # no boot for nothing
        pytest.fail(nodeid, pytrace=False)
    _available(boot)
    outcome = request.getfixturevalue("outcome")
    rec = outcome.results.get(nodeid)
    if rec is None:
        _booted(outcome)
        pytest.fail(f"{nodeid} did not run in the guest (pytest exit {outcome.summary.get('pytest_rc')}; "
                    f"see {outcome.out / 'console.log'})", pytrace=False)
    if rec["outcome"] in ("skipped", "xfailed"):
        pytest.skip(f"in the guest: {rec['reason']}")
    if rec["outcome"] != "passed":
        pytest.fail(f"{rec['outcome']} in the guest ({rec['duration']} s):\n{rec['text']}\n{rec['output']}",
                    pytrace=False)


def test_the_guest_kernel_is_pure_v2(request, boot):
    _available(boot)
    s = _booted(request.getfixturevalue("outcome")).summary
    # cgroup.controllers exists only at a cgroup2 root: /sys/fs/cgroup is one, with controllers
    assert {"cpu", "memory", "pids"} <= set(s["controllers"]), s
    assert s["kernel"] == vm.boot_kernel(BOOTS[boot]).version


def test_nothing_left_in_the_guest_cgroup_tree(request, boot):
    _available(boot)
    left = _booted(request.getfixturevalue("outcome")).summary["left"]
    assert left == {}, f"cgroups left after the tests (with their processes): {left}"
