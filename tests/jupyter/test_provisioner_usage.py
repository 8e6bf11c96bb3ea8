"""The kernel-side helpers, on fake cgroup trees: own_cgroup_stats() and the usage_reply contents.

The same code is exercised for real inside containers by test_provisioner.py (usage_request on the
control channel); here every layout (v1, v1 with combined cpu,cpuacct, v2, a process outside a
container) is checked with known numbers.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from jupybox.jupyter import kernel_usage
from jupybox.jupyter.kernel_usage import UsageMeter, install, own_cgroup_stats

MiB = 1024 * 1024


def write(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def v1_tree(root: Path, sub: str = "", combined: bool = False, cpu_ns: int = 5_000_000_000) -> None:
    cpu = "cpu,cpuacct" if combined else "cpu"
    acct = "cpu,cpuacct" if combined else "cpuacct"
    write(root, {
        f"memory/{sub}memory.usage_in_bytes": str(100 * MiB),
        f"memory/{sub}memory.max_usage_in_bytes": str(150 * MiB),
        f"memory/{sub}memory.limit_in_bytes": str(512 * MiB),
        f"memory/{sub}memory.memsw.limit_in_bytes": str(512 * MiB),
        f"memory/{sub}memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        f"memory/{sub}cgroup.procs": "1\n2\n",
        f"{cpu}/{sub}cpu.cfs_quota_us": "150000",
        f"{cpu}/{sub}cpu.cfs_period_us": "100000",
        f"{cpu}/{sub}cpu.shares": "1024",
        f"{cpu}/{sub}cpu.stat": "nr_periods 10\nnr_throttled 3\nthrottled_time 7000\n",
        f"{acct}/{sub}cpuacct.usage": str(cpu_ns),
        f"pids/{sub}pids.current": "7",
        f"pids/{sub}pids.max": "300",
    })


def v2_tree(root: Path, sub: str = "") -> None:
    write(root, {
        "cgroup.controllers": "cpu memory pids\n",
        f"{sub}memory.current": str(64 * MiB),
        f"{sub}memory.peak": str(80 * MiB),
        f"{sub}memory.max": str(256 * MiB),
        f"{sub}memory.swap.max": "0",
        f"{sub}memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        f"{sub}cpu.stat": "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 4\n"
                          "nr_throttled 1\nthrottled_usec 30\n",
        f"{sub}cpu.max": "50000 100000",
        f"{sub}cpu.weight": "100",
        f"{sub}pids.current": "3",
        f"{sub}pids.max": "max",
        f"{sub}cgroup.procs": "1\n",
    })


def proc_cgroup(tmp_path: Path, text: str) -> str:
    p = tmp_path / "self-cgroup"
    p.write_text(text)
    return str(p)


def test_v1_inside_a_container(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root)
    stats = own_cgroup_stats(str(root), proc_cgroup(tmp_path, "8:pids:/\n4:memory:/\n2:cpuacct:/\n1:cpu:/\n0::/\n"))
    assert stats.memory_current == 100 * MiB
    assert stats.memory_peak == 150 * MiB
    assert stats.memory_limit == 512 * MiB
    assert stats.oom_kills == 2
    assert stats.cpu_quota == 1.5
    assert stats.cpu_usage_ns == 5_000_000_000
    assert stats.pids_current == 7 and stats.pids_limit == 300
    assert stats.nr_throttled == 3


def test_v1_combined_cpu_cpuacct_hierarchy(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root, combined=True)
    stats = own_cgroup_stats(str(root), proc_cgroup(tmp_path, "2:cpu,cpuacct:/\n"))
    assert stats.cpu_quota == 1.5 and stats.cpu_usage_ns == 5_000_000_000


def test_v1_outside_a_container_follows_proc_self_cgroup(tmp_path):
    root = tmp_path / "cg"
    write(root, {"memory/memory.usage_in_bytes": "1", "memory/memory.max_usage_in_bytes": "1",
                 "memory/memory.limit_in_bytes": str(2**63 - 4096), "memory/memory.oom_control": "oom_kill 0\n",
                 "cpuacct/cpuacct.usage": "1"})  # the root cgroup: unlimited, no pids.current
    v1_tree(root, sub="jupybox/abc/")
    self_cgroup = proc_cgroup(tmp_path, "8:pids:/jupybox/abc\n4:memory:/jupybox/abc\n2:cpuacct:/jupybox/abc\n"
                                        "1:cpu:/jupybox/abc\n")
    stats = own_cgroup_stats(str(root), self_cgroup)
    assert stats.memory_limit == 512 * MiB and stats.pids_limit == 300
    # a path that is not visible falls back to the mount (a container's own cgroup)
    stats = own_cgroup_stats(str(root), proc_cgroup(tmp_path, "4:memory:/elsewhere\n"))
    assert stats.memory_limit is None  # the root's "unlimited"


def test_v2(tmp_path):
    root = tmp_path / "cg"
    v2_tree(root)
    stats = own_cgroup_stats(str(root), proc_cgroup(tmp_path, "0::/\n"))
    assert stats.memory_current == 64 * MiB and stats.memory_peak == 80 * MiB
    assert stats.memory_limit == 256 * MiB
    assert stats.oom_kills == 1
    assert stats.cpu_quota == 0.5
    assert stats.cpu_usage_ns == 2_000_000_000
    assert stats.pids_current == 3 and stats.pids_limit is None
    v2_tree(root, sub="user.slice/x/")
    stats = own_cgroup_stats(str(root), proc_cgroup(tmp_path, "0::/user.slice/x\n"))
    assert stats.memory_limit == 256 * MiB


def test_no_controllers_is_a_clear_error(tmp_path):
    (tmp_path / "cg").mkdir()
    from jupybox.errors import CgroupError

    with pytest.raises(CgroupError, match="no cgroup controllers"):
        own_cgroup_stats(str(tmp_path / "cg"), proc_cgroup(tmp_path, ""))


def test_usage_reply_contents(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    v1_tree(root, cpu_ns=5_000_000_000)
    meter = UsageMeter(str(root), proc_cgroup(tmp_path, "4:memory:/\n"))
    # one second later the container has used 0.75 s of CPU: 75 % of one CPU, 50 % of its 1.5
    meter._last = (time.monotonic() - 1.0, 5_000_000_000)  # noqa: SLF001 - the previous reply
    (root / "cpuacct" / "cpuacct.usage").write_text(str(5_750_000_000))
    monkeypatch.setattr(kernel_usage, "INFO_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("JUPYBOX_CONTAINER_ID", "c0ffee")
    c = meter.content()
    assert c["hostname"] == socket.gethostname()
    assert c["kernel_memory"] == 100 * MiB
    assert c["host_virtual_memory"] == {"total": 512 * MiB, "available": 412 * MiB, "used": 100 * MiB,
                                        "free": 412 * MiB, "percent": 19.5}
    assert c["cpu_count"] == 2
    assert 74 <= c["kernel_cpu"] <= 75.01  # the second elapsed a little more than 1.0 s
    assert 49 <= c["host_cpu_percent"] <= 50.01
    assert c["container"]["id"] == "c0ffee" and c["container"]["cgroup"] == 1
    assert c["container"]["pids_limit"] == 300


def test_first_reply_averages_since_the_kernel_started(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root, cpu_ns=10**18)  # far more CPU than this process can have used since it started
    meter = UsageMeter(str(root), proc_cgroup(tmp_path, ""))
    assert meter._last is None  # noqa: SLF001 - nothing read when the extension loads
    first = meter.content()["kernel_cpu"]
    assert first > 100  # an average since the start, not the 0.0 psutil gives the first time
    assert meter.content()["kernel_cpu"] == 0.0  # no CPU used since the first reply


def test_usage_reply_without_memory_limit_uses_the_host_total(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root)
    (root / "memory" / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
    c = UsageMeter(str(root), proc_cgroup(tmp_path, "")).content()
    assert c["host_virtual_memory"]["total"] == kernel_usage._host_memory_total()  # noqa: SLF001


class FakeSession:
    def __init__(self):
        self.sent = []

    def send(self, stream, msg_type, content, parent, ident):
        self.sent.append((stream, msg_type, content, parent, ident))


class FakeKernel:
    control_msg_types = ["shutdown_request"]

    def __init__(self):
        self.session = FakeSession()
        self.control_handlers = {"shutdown_request": object()}


def test_install_replaces_the_usage_request_handler(tmp_path):
    root = tmp_path / "cg"
    v2_tree(root)
    k = FakeKernel()
    install(k, UsageMeter(str(root), proc_cgroup(tmp_path, "0::/\n")))
    assert "usage_request" in k.control_msg_types  # added for an ipykernel that has none
    k.control_handlers["usage_request"]("stream", ["id"], {"header": {}})
    [(stream, msg_type, content, parent, ident)] = k.session.sent
    assert (stream, msg_type, ident) == ("stream", "usage_reply", ["id"])
    assert content["host_virtual_memory"]["total"] == 256 * MiB
    # a cgroup that cannot be read still gets an answer, with the reason
    (root / "memory.max").unlink()
    k.control_handlers["usage_request"]("stream", ["id"], {"header": {}})
    assert "cannot read the kernel's cgroup" in k.session.sent[-1][2]["error"]


def test_the_real_ipykernel_handler_is_replaced():
    pytest.importorskip("ipykernel")
    from ipykernel.kernelbase import Kernel

    assert "usage_request" in Kernel.control_msg_types  # what we override exists upstream


def test_listening_ports_parser(tmp_path):
    from jupybox.jupyter.provisioner import listening_tcp_ports

    tcp = tmp_path / "tcp"
    tcp.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"
        "   1: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 2\n"
    )
    tcp6 = tmp_path / "tcp6"
    tcp6.write_text(
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000001000000:04D2 00000000000000000000000000000000:0000 0A 0 0\n"
    )
    assert listening_tcp_ports((str(tcp), str(tcp6), str(tmp_path / "missing"))) == {0xA1B2, 1234}
