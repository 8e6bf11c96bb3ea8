"""jupybox.linux.caps: the table and docker's rules (applying a set: test_linux_spawn.py)."""

from __future__ import annotations

import pytest

from jupybox.linux import caps as C

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
