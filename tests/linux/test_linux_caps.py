"""jupybox.linux.caps: the table, docker's rules, and applying a set (in forked children)."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from jupybox.linux import caps as C
from jupybox.linux import syscalls as sc

ROOT_REASON = "needs root (capabilities)"


def needs_root(test):
    """The project's ``root`` marker, plus a skip that says why."""
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_REASON)(test))


DOCKER_MASK = 0x00000000A80425FB


def n(name: str) -> int:
    return C.CAP_NUMBERS[name]


def test_table():
    assert len(C.CAP_NAMES) == 41
    assert C.CAP_NUMBERS["CAP_CHOWN"] == 0
    assert C.CAP_NUMBERS["CAP_SYS_ADMIN"] == 21
    assert C.CAP_NUMBERS["CAP_MKNOD"] == 27
    assert C.CAP_NUMBERS["CAP_SETFCAP"] == 31
    assert C.CAP_NUMBERS["CAP_SYSLOG"] == 34
    assert C.CAP_NUMBERS["CAP_PERFMON"] == 38 and C.CAP_NUMBERS["CAP_BPF"] == 39
    assert C.CAP_NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40
    assert all(C.CAP_NAMES[i] == name for name, i in C.CAP_NUMBERS.items())
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert C.LAST_CAP == min(40, int(f.read()))
    assert C.ALL_CAPS == frozenset(range(C.LAST_CAP + 1))


def test_docker_default_set():
    assert len(C.DOCKER_DEFAULT_CAPS) == 14
    assert C.caps_mask(C.DOCKER_DEFAULT_CAPS) == DOCKER_MASK
    assert C.cap_names(C.DOCKER_DEFAULT_CAPS) == sorted(C.cap_names(C.DOCKER_DEFAULT_CAPS), key=n)
    assert "CAP_SYS_ADMIN" not in C.cap_names(C.DOCKER_DEFAULT_CAPS)


def test_cap_number_spellings():
    assert C.cap_number("net_admin") == C.cap_number("CAP_NET_ADMIN") == C.cap_number("Cap_Net_Admin") == 12
    with pytest.raises(ValueError, match="unknown capability: 'CAP_FLY'"):
        C.cap_number("CAP_FLY")


def test_resolve_defaults():
    assert C.resolve_caps([], [], False) == set(C.DOCKER_DEFAULT_CAPS)
    assert C.resolve_caps() == set(C.DOCKER_DEFAULT_CAPS)


def test_resolve_add_and_drop():
    got = C.resolve_caps(["net_admin", "CAP_SYS_PTRACE"], ["chown", "CAP_KILL", "mknod"], False)
    assert got == (set(C.DOCKER_DEFAULT_CAPS) - {0, 5, 27}) | {12, 19}


def test_resolve_add_all():
    assert C.resolve_caps(["ALL"], [], False) == set(C.ALL_CAPS)
    assert C.resolve_caps(["all"], ["NET_RAW", "sys_admin"], False) == set(C.ALL_CAPS) - {13, 21}
    # add ALL wins over drop ALL (moby checks the add list first)
    assert C.resolve_caps(["ALL"], ["ALL"], False) == set(C.ALL_CAPS)


def test_resolve_drop_all_plus_one():
    assert C.resolve_caps(["chown"], ["ALL"], False) == {0}
    assert C.resolve_caps([], ["all"], False) == set()
    assert C.resolve_caps(["CAP_NET_BIND_SERVICE", "setuid"], ["ALL"], False) == {7, 10}


def test_resolve_privileged():
    assert C.resolve_caps([], [], True) == set(C.ALL_CAPS)
    assert C.resolve_caps([], ["ALL"], True) == set(C.ALL_CAPS)


def test_resolve_bad_names():
    with pytest.raises(ValueError, match="unknown capability: 'CAP_NOPE'"):
        C.resolve_caps(["CAP_NOPE"], [], False)
    with pytest.raises(ValueError, match="unknown capability: 'sys_bogus'"):
        C.resolve_caps([], ["sys_bogus"], False)
    with pytest.raises(ValueError):
        C.resolve_caps(["ALL", "frobnicate"], [], False)


def test_current_caps_reads_proc():
    got = C.current_caps()
    assert set(got) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
    with open("/proc/self/status") as f:
        eff = [line for line in f if line.startswith("CapEff:")][0]
    assert got["CapEff"] == int(eff.split()[1], 16)


def _status_after_exec() -> dict[str, int]:
    out = subprocess.run(["/bin/cat", "/proc/self/status"], capture_output=True, text=True, check=True).stdout
    return {k: int(v.split()[0], 16) for k, _, v in (x.partition(":") for x in out.splitlines())
            if k.startswith("Cap")}


@needs_root
def test_apply_docker_defaults(in_child, tmp_path):
    victim = tmp_path / "f"
    victim.write_text("x")

    def child():
        # own UTS and mount namespaces first: should apply_caps fail to drop CAP_SYS_ADMIN, the
        # sethostname below must not rename the host
        sc.unshare(sc.CLONE_NEWUTS | sc.CLONE_NEWNS)
        C.apply_caps(C.DOCKER_DEFAULT_CAPS)
        own = C.current_caps()
        after_exec = _status_after_exec()
        os.chown(victim, 1234, 1234)  # CAP_CHOWN kept
        errs = []
        for call in (lambda: sc.unshare(sc.CLONE_NEWIPC), lambda: sc.sethostname("nope"),
                     lambda: C.apply_caps(C.DOCKER_DEFAULT_CAPS | {n("CAP_SYS_ADMIN")})):
            try:
                call()
                errs.append(None)
            except OSError as e:
                errs.append(e.errno)
        return own, after_exec, os.stat(victim).st_uid, errs, C.current_caps()

    own, after_exec, uid, errs, later = in_child(child)
    assert own["CapEff"] == own["CapPrm"] == own["CapBnd"] == own["CapInh"] == DOCKER_MASK
    assert own["CapAmb"] == 0
    assert after_exec["CapEff"] == after_exec["CapBnd"] == DOCKER_MASK  # root keeps them across exec
    assert uid == 1234
    # unshare and sethostname need CAP_SYS_ADMIN; asking for it back is silently clamped, not granted
    assert errs == [errno.EPERM, errno.EPERM, None]
    assert later["CapEff"] == DOCKER_MASK
    assert C.current_caps()["CapEff"] != DOCKER_MASK  # the test process is untouched


@needs_root
def test_apply_without_inheritable(in_child):
    def child():
        C.apply_caps({n("CAP_KILL"), n("CAP_SYS_ADMIN")}, inheritable=False)
        return C.current_caps()

    got = in_child(child)
    assert got["CapEff"] == got["CapPrm"] == got["CapBnd"] == (1 << 5) | (1 << 21)
    assert got["CapInh"] == 0


@needs_root
def test_apply_nothing(in_child):
    def child():
        C.apply_caps(set())
        return C.current_caps(), _status_after_exec()

    own, after_exec = in_child(child)
    assert own == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}
    assert after_exec["CapEff"] == 0 and after_exec["CapBnd"] == 0


@needs_root
def test_apply_all_is_clamped_to_what_we_have(in_child):
    mine = C.current_caps()

    def child():
        C.apply_caps(C.ALL_CAPS)
        return C.current_caps()

    got = in_child(child)
    assert got["CapEff"] == mine["CapPrm"] & C.caps_mask(C.ALL_CAPS)
    assert got["CapBnd"] == mine["CapBnd"] & mine["CapPrm"]
