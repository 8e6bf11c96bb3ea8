"""The kernel provisioner, for real: jupyter_client's KernelManager starts kernels in containers.

Every kernel here runs in a container of a store made for this module; after each test the
store must hold no container, and no cgroup may hold a process of ours (the store's service's
one prewarmed sandbox excepted while it lives).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

import jupybox  # noqa: E402
from jupybox import api  # noqa: E402
from jupybox.jupyter import kernelspec  # noqa: E402
from jupybox.jupyter.provisioner import JupyboxProvisioner, KernelStartError  # noqa: E402
from jupybox.testing import debian_tarball, import_image  # noqa: E402
from jupybox.testing.leaks import children  # noqa: E402

MiB = 1024 * 1024
REPLY_TIMEOUT = 60  # generous bounds on waits; nothing here asserts a duration


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kroot(tmp_path_factory):
    """A store for this module's kernels; its service is stopped at the end."""
    root = tmp_path_factory.mktemp("jbx-kernels")
    yield root
    close_launcher(root)
    from jupybox.testing.leaks import cleanup_mounts_under, kill_processes_under

    kill_processes_under(root)
    cleanup_mounts_under(root)


@pytest.fixture(scope="module")
def jpath(tmp_path_factory):
    """A private JUPYTER_PATH prefix: kernelspecs installed for these tests only."""
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    yield prefix
    mp.undo()


@pytest.fixture(scope="module")
def spec(kroot, jpath):
    """install(name, **config) -> kernel name, installed under the private prefix with root=kroot."""

    def install(name, display_name=None, env=None, **config):
        config.setdefault("root", str(kroot))
        kernelspec.install(name, prefix=str(jpath), display_name=display_name, env=env, **config)
        return name

    return install


@pytest.fixture(autouse=True)
def no_kernel_dirs_left():
    """The per-kernel host directories (connection copy, info, ipc sockets) go with their kernel."""
    import glob
    import tempfile

    pattern = os.path.join(tempfile.gettempdir(), "jupybox-kernel-*")
    before = set(glob.glob(pattern))
    yield
    left = set(glob.glob(pattern)) - before
    assert not left, f"per-kernel directories left: {sorted(left)}"


def close_launcher(root) -> None:
    """This process's connection to the store's service closed, and the service stopped."""
    from jupybox.testing.leaks import stop_services

    client = api._clients.pop(api._key(root), None)  # noqa: SLF001 - tests own this process's connections
    if client is not None:
        client.close()
    stop_services(root)


def our_cgroups(root) -> dict[str, list[int]]:
    """jupybox cgroups (by name) holding a process that descends from this test process."""
    eng = jupybox.engine(root)
    mine = set(children())
    out = {}
    for name in eng.cgroups.list():
        pids = eng.cgroups.open(name).pids()
        if any(p in mine for p in pids):
            out[name] = pids
    return out


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def descends(pid: int, ancestor: int | None) -> bool:
    while ancestor and pid and pid != 1:
        pid = parent_of(pid)
        if pid == ancestor:
            return True
    return False


def assert_nothing_left(root, container_ids, init_pids=()) -> None:
    """No container, no cgroup and no process of these kernels. The store's service keeps
    sandboxes made ahead (cgroups named by the id of a *future* container): it is stopped before
    the cgroups are counted, once the containers are known to be gone."""
    from jupybox.testing.leaks import stop_services

    eng = jupybox.engine(root)
    deadline = time.monotonic() + 10
    while True:
        left = [c.id for c in jupybox.containers(all=True, root=root)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == [], f"containers left in the store: {left}"
    stop_services(root)
    cgroups = {cid for cid in container_ids if eng.cgroups.open(cid).exists()}
    alive = [p for p in init_pids if p and os.path.exists(f"/proc/{p}") and parent_of(p) is not None]
    assert not cgroups, f"cgroups of the kernels' containers left: {cgroups}"
    assert not alive, f"kernel processes still alive: {alive}"
    assert not our_cgroups(root), f"cgroups holding our processes: {our_cgroups(root)}"


class Kernel:
    """A started kernel: a KernelManager, a blocking client and a few helpers."""

    def __init__(self, name: str, cwd=None, **km_options):
        self.km = KernelManager(kernel_name=name, **km_options)
        self.km.start_kernel(cwd=str(cwd) if cwd else None)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=REPLY_TIMEOUT)

    @property
    def provisioner(self) -> JupyboxProvisioner:
        return self.km.provisioner

    def run(self, code: str, timeout: float = REPLY_TIMEOUT) -> tuple[str, dict]:
        """Execute; return (stdout + stderr text, the execute_reply content)."""
        out: list[str] = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        return "".join(out), reply["content"]

    def value(self, expr: str):
        text, reply = self.run(f"import json as _j; print(_j.dumps({expr}))")
        assert reply["status"] == "ok", reply
        return json.loads(text.strip().splitlines()[-1])

    def usage(self) -> dict:
        msg = self.kc.session.msg("usage_request", {})
        self.kc.control_channel.send(msg)
        while True:
            reply = self.kc.control_channel.get_msg(timeout=REPLY_TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "usage_reply"
                return reply["content"]

    def close(self) -> None:
        self.kc.stop_channels()
        if self.km.has_kernel:
            self.km.shutdown_kernel(now=False)
        else:
            self.km.cleanup_resources()


@contextmanager
def kernel(name, cwd=None, **km_options):
    k = Kernel(name, cwd, **km_options)
    try:
        yield k
    finally:
        k.close()


# -- a kernel in a container ------------------------------------------------------------------
def test_kernel_runs_in_its_own_container_with_its_limits(spec, kroot, tmp_path):
    name = spec("jbx-limits", memory="256m", cpus=1, pids_limit=300)
    with kernel(name, cwd=tmp_path) as k:
        prov = k.provisioner
        assert isinstance(prov, JupyboxProvisioner)
        cid = prov.container_id
        init_pid = prov.container.pid
        assert [c.id for c in jupybox.containers(root=kroot)] == [cid]
        assert jupybox.engine(kroot).cgroups.open(cid).exists()
        labels = jupybox.container(cid, root=kroot).config["spec"]["labels"]
        assert labels == {"io.jupybox.kernel.id": k.km.kernel_id, "io.jupybox.kernel.name": name}

        assert k.value("__import__('socket').gethostname()") != socket.gethostname()
        pid = k.value("__import__('os').getpid()")
        assert pid < 10 and pid != prov.container.pid  # its own PID namespace
        init_cmd = k.value("open('/proc/1/cmdline').read().replace(chr(0), ' ')")
        assert init_cmd.strip() == "jupybox-init"  # PID 1 is jupybox's init, not the kernel; nothing of the host
        assert k.value("open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip()"
                       if os.path.isdir("/sys/fs/cgroup/memory") else
                       "open('/sys/fs/cgroup/memory.max').read().strip()") == str(256 * MiB)
        stats = k.value("__import__('jupybox.jupyter.kernel_usage', fromlist=['x']).own_cgroup_stats().to_dict()")
        assert stats["memory_limit"] == 256 * MiB
        assert stats["pids_limit"] == 300
        assert stats["cpu_quota"] == 1.0
        assert 0 < stats["memory_current"] <= 256 * MiB
        env = k.value("{k: v for k, v in __import__('os').environ.items() if k.startswith(('JUPYBOX', 'JPY'))}")
        assert env["JUPYBOX_CONTAINER_ID"] == cid
        assert env["JUPYBOX_IN_CONTAINER"] == "1"
        assert env["JUPYBOX_CONTAINER_NAME"] == prov.container_name
        assert env["JPY_PARENT_PID"] == "1"
        # the server's environment does not leak in
        assert "PYTEST_CURRENT_TEST" in os.environ
        assert not k.value("'PYTEST_CURRENT_TEST' in __import__('os').environ")
    assert_nothing_left(kroot, [cid], [init_pid])


def test_usage_request_answers_with_the_container_cgroup(spec, kroot):
    name = spec("jbx-usage", memory="300m", cpus=0.5)
    with kernel(name) as k:
        k.run("x = bytearray(40 * 1024 * 1024)")  # charged to the container
        usage = k.usage()
        cid = k.provisioner.container_id
    assert usage["host_virtual_memory"]["total"] == 300 * MiB  # the limit, not the host's RAM
    assert usage["container"]["memory_limit"] == 300 * MiB
    assert usage["container"]["cpu_quota"] == 0.5
    assert usage["container"]["id"] == cid
    assert usage["cpu_count"] == 1
    assert 40 * MiB <= usage["kernel_memory"] <= 300 * MiB
    assert usage["host_virtual_memory"]["used"] == usage["kernel_memory"]
    assert usage["hostname"] == cid[:12]
    assert_nothing_left(kroot, [cid])


def test_container_self_charts_the_kernels_own_cgroup(spec, kroot):
    name = spec("jbx-self", memory="300m", cpus=0.5)
    with kernel(name) as k:
        text, reply = k.run("%load_ext jupybox\n"
                            "from jupybox.jupyter.monitor import OwnCgroup\n"
                            "st = OwnCgroup().stats()\n"
                            "print(st.memory_limit, st.cpu_quota)\n"
                            "%container self --for 0.6")
        assert reply["status"] == "ok", reply
        limit, quota = text.split()[:2]
        cid = k.provisioner.container_id
    assert int(limit) == 300 * MiB and float(quota) == 0.5  # the kernel's container, not the host
    assert_nothing_left(kroot, [cid])


def test_notebook_directory_is_mounted_and_the_runtime_dir_is_not(spec, kroot, tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "data.csv").write_text("a,b\n1,2\n")
    name = spec("jbx-cwd")
    with kernel(name, cwd=notebooks) as k:
        assert k.value("__import__('os').getcwd()") == str(notebooks)
        assert k.value("open('data.csv').read()") == "a,b\n1,2\n"
        k.run("open('written-inside.txt', 'w').write('from the kernel')")
        assert (notebooks / "written-inside.txt").read_text() == "from the kernel"
        # the connection file came through stdin: no host path of the runtime directory is visible
        cf = os.path.realpath(k.km.connection_file)
        assert not k.value(f"__import__('os').path.exists({os.path.dirname(cf)!r} + '/' + {os.path.basename(cf)!r})")
        inside = k.value("__import__('sys').argv[__import__('sys').argv.index('-f') + 1]")
        assert inside == "/dev/shm/jupybox-connection.json"
        assert k.value(f"__import__('json').load(open({inside!r}))['shell_port']") == k.km.shell_port
        assert k.value(f"oct(__import__('os').stat({inside!r}).st_mode & 0o777)") == "0o600"
        assert k.value("__import__('sys').stdin.closed or __import__('sys').stdin.read() == ''")
        # the rest of the host stays invisible: the notebook directory's parent is not mounted
        (tmp_path / "elsewhere.txt").write_text("not for the kernel")
        assert not k.value(f"__import__('os').path.exists({str(tmp_path / 'elsewhere.txt')!r})")
        cid = k.provisioner.container_id
    assert_nothing_left(kroot, [cid])


def test_a_runtime_dir_inside_the_notebook_directory_is_hidden(spec, kroot, tmp_path):
    """jupyter_server's runtime dir under the notebook dir (JupyterLab started in ~): keys stay hidden."""
    home = tmp_path / "home"
    runtime = home / ".local" / "share" / "jupyter" / "runtime"
    runtime.mkdir(parents=True)
    (runtime / "kernel-other.json").write_text('{"key": "another kernel\'s key"}')
    (home / "notes.txt").write_text("mine")
    name = spec("jbx-home")
    with kernel(name, cwd=home, connection_file=str(runtime / "kernel-mine.json")) as k:
        assert k.value("open('notes.txt').read()") == "mine"
        assert k.value(f"sorted(__import__('os').listdir({str(runtime)!r}))") == []  # an empty tmpfs
        assert k.value(f"sorted(__import__('os').listdir({str(home)!r}))") == [".local", "notes.txt"]
        cid = k.provisioner.container_id
    assert (runtime / "kernel-other.json").exists()
    assert_nothing_left(kroot, [cid])


def test_mount_cwd_false_and_another_path(spec, kroot, tmp_path):
    (tmp_path / "mine.txt").write_text("hello")
    off = spec("jbx-nocwd", mount_cwd=False)
    with kernel(off, cwd=tmp_path) as k:
        assert k.value("__import__('os').getcwd()") == "/"
        assert not k.value(f"__import__('os').path.exists({str(tmp_path / 'mine.txt')!r})")
        ids = [k.provisioner.container_id]
    moved = spec("jbx-workcwd", mount_cwd="/home/jovyan/work")
    with kernel(moved, cwd=tmp_path) as k:
        assert k.value("__import__('os').getcwd()") == "/home/jovyan/work"
        assert k.value("open('mine.txt').read()") == "hello"
        assert k.provisioner.resolve_path("/home/jovyan/work/mine.txt") == str(tmp_path / "mine.txt")
        ids.append(k.provisioner.container_id)
    assert_nothing_left(kroot, ids)


def test_interrupt_stops_a_sleeping_cell(spec, kroot):
    name = spec("jbx-interrupt", memory="256m")
    with kernel(name) as k:
        msg_id = k.kc.execute("import time; time.sleep(100)")
        # wait until the cell runs (busy), then interrupt the way JupyterLab does
        while True:
            m = k.kc.get_iopub_msg(timeout=REPLY_TIMEOUT)
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
                break
        time.sleep(0.3)  # inside time.sleep, not before it
        k.km.interrupt_kernel()
        while True:
            reply = k.kc.get_shell_msg(timeout=30)  # far below the cell's 100 s
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert k.km.is_alive()
        assert k.value("6 * 7") == 42  # the same kernel goes on
        cid = k.provisioner.container_id
    assert_nothing_left(kroot, [cid])


def test_restart_gives_a_fresh_kernel_in_a_fresh_container(spec, kroot):
    name = spec("jbx-restart", memory="256m")
    with kernel(name) as k:
        first = k.provisioner.container_id
        first_pid = k.provisioner.container.pid
        k.run("marker = 1; open('/tmp/marker', 'w').write('x')")
        assert k.value("__import__('os').path.exists('/tmp/marker')")
        k.km.restart_kernel(now=False)
        k.kc.wait_for_ready(timeout=REPLY_TIMEOUT)
        second = k.provisioner.container_id
        assert second != first
        assert [c.id for c in jupybox.containers(all=True, root=kroot)] == [second]
        assert not jupybox.engine(kroot).cgroups.open(first).exists()
        assert k.value("'marker' in globals()") is False
        assert k.value("__import__('os').path.exists('/tmp/marker')") is False  # fresh write layer
        assert k.value("__import__('os').environ['JUPYBOX_CONTAINER_ID']") == second
        second_pid = k.provisioner.container.pid
    assert_nothing_left(kroot, [first, second], [first_pid, second_pid])


def test_a_crashed_kernel_leaves_nothing_behind(spec, kroot):
    name = spec("jbx-crash", memory="256m")
    k = Kernel(name)
    try:
        cid = k.provisioner.container_id
        init_pid = k.provisioner.container.pid
        k.kc.execute("import os; os._exit(3)")
        deadline = time.monotonic() + REPLY_TIMEOUT
        while k.km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not k.km.is_alive()
        assert k.km.provisioner._exit_code() == 3  # noqa: SLF001 - the kernel's own status
        assert_nothing_left(kroot, [cid], [init_pid])
    finally:
        k.close()
    assert_nothing_left(kroot, [cid], [init_pid])


def test_an_oom_killed_kernel_says_why(spec, kroot):
    """Issue 19.8: a boxed kernel that allocates past its -m. jupyter_client's restarter (the one
    jupyter_server runs, polled here by hand) finds it dead and restarts it; the server's log says
    why, with the limit and the peak, and so does the next kernel's first cell (once)."""
    import logging

    from jupyter_client.restarter import KernelRestarter

    log = logging.getLogger("jupybox-test-server")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = seen.append
    log.addHandler(handler)
    name = spec("jbx-oom", memory="128m")
    k = Kernel(name, log=log)
    try:
        first = k.provisioner.container_id
        restarts = []
        restarter = KernelRestarter(kernel_manager=k.km, log=log)
        restarter.add_callback(lambda: restarts.append(1), "restart")
        k.kc.execute("ballast = bytearray(512 << 20)")  # zero-filled: every page touched
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not restarts:
            assert time.monotonic() < deadline, "the kernel was not found dead"
            restarter.poll()
            time.sleep(0.1)
        k.kc.wait_for_ready(timeout=REPLY_TIMEOUT)
        assert k.provisioner.container_id != first
        told = [r.getMessage() for r in seen if "OOM" in r.getMessage()]
        assert len(told) == 1, [r.getMessage() for r in seen]
        reason = told[0]
        assert reason.startswith("jupybox: kernel ") and "was killed by the OOM killer: memory limit 128MiB" in reason
        print(reason)
        peak = re.search(r"peak ([0-9.]+)MiB", reason)
        assert peak and 64 < float(peak.group(1)) <= 128, reason
        text, reply = k.run("1 + 1")
        assert reply["status"] == "ok" and reason in text
        text, _ = k.run("print('again')")
        assert text == "again\n"  # said once
    finally:
        log.removeHandler(handler)
        k.close()


def test_provisioner_info_round_trip(spec, kroot):
    """get_provisioner_info / load_provisioner_info: another provisioner object takes over the kernel."""
    import asyncio

    name = spec("jbx-info")
    with kernel(name) as k:
        info = asyncio.run(k.provisioner.get_provisioner_info())
        assert info["container_id"] == k.provisioner.container_id
        assert info["kernel_id"] == k.km.kernel_id and info["connection_info"]["shell_port"] == k.km.shell_port
        other = JupyboxProvisioner(kernel_id=k.km.kernel_id, kernel_spec=k.km.kernel_spec, root=str(kroot))
        asyncio.run(other.load_provisioner_info(dict(info)))
        assert other.has_process
        assert asyncio.run(other.poll()) is None
        asyncio.run(other.kill())
        assert asyncio.run(other.wait()) == 137
        deadline = time.monotonic() + REPLY_TIMEOUT
        while k.km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not k.km.is_alive()  # the original manager sees its kernel gone
        cid = info["container_id"]
    assert_nothing_left(kroot, [cid])


def test_a_command_the_shim_does_not_wrap_gets_its_connection_file_mounted(spec, kroot, tmp_path):
    """Not ``python3 -m ...``: the private copy of the connection file and the info dir are mounted."""
    name = spec("jbx-mounted", argv=["env", "python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    with kernel(name, cwd=tmp_path) as k:
        cf = os.path.realpath(k.km.connection_file)
        assert k.value("__import__('sys').argv[__import__('sys').argv.index('-f') + 1]") == cf
        assert k.value(f"__import__('json').load(open({cf!r}))['shell_port']") == k.km.shell_port
        decoy = Path(cf).parent / "kernel-decoy-secret.json"
        decoy.write_text("{}")
        try:
            assert not k.value(f"__import__('os').path.exists({str(decoy)!r})")  # only the file is mounted
        finally:
            decoy.unlink()
        cid = k.provisioner.container_id
        assert k.value("__import__('os').environ['JUPYBOX_CONTAINER_ID']") == cid  # from the info file
        assert k.value("__import__('json').load(open('/run/jupybox/container.json'))['id']") == cid
        kernel_dir = k.provisioner.kernel_dir
        assert os.path.isdir(kernel_dir)
        assert k.usage()["container"]["id"] == cid
    assert not os.path.exists(kernel_dir)
    assert_nothing_left(kroot, [cid])


def test_network_none_uses_ipc_sockets_and_has_no_network(spec, kroot):
    name = spec("jbx-nonet", network="none")
    with kernel(name) as k:
        info = k.km.get_connection_info()
        assert info["transport"] == "ipc"
        assert info["ip"].startswith(k.provisioner.kernel_dir)
        assert sorted(k.value("__import__('os').listdir('/sys/class/net')")) == ["lo"]
        assert k.value("6 * 7") == 42
        kernel_dir = k.provisioner.kernel_dir
        cid = k.provisioner.container_id
    assert not os.path.exists(kernel_dir)
    assert_nothing_left(kroot, [cid])


def test_a_killed_server_leaves_no_kernel(spec, kroot, tmp_path):
    """The container is attached to the server process: kill -9 the server, the kernel goes too."""
    name = spec("jbx-orphan", memory="256m")
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from jupyter_client.manager import KernelManager
        km = KernelManager(kernel_name=sys.argv[1])
        km.start_kernel()
        kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
        print(km.provisioner.container_id, km.provisioner.container.pid, km.provisioner.kernel_dir, flush=True)
        time.sleep(600)
    """))
    proc = subprocess.Popen([sys.executable, str(script), name], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        line = proc.stdout.readline().split()
        assert line, "the server did not start its kernel"
        cid, init_pid, kernel_dir = line[0], int(line[1]), line[2]
        assert any(c.id == cid for c in jupybox.containers(root=kroot))
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cgroup = jupybox.engine(kroot).cgroups.open(cid)
    deadline = time.monotonic() + 20
    # the cgroup's rmdir comes after the container is gone from the list (the service answers first)
    while time.monotonic() < deadline and (os.path.exists(f"/proc/{init_pid}") or cgroup.exists()
                                           or jupybox.containers(all=True, root=kroot)):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{init_pid}")
    assert jupybox.containers(all=True, root=kroot) == []
    assert not cgroup.exists()
    assert kernel_dir == "None"  # nothing on the host side to clean after the server's death


# -- other images ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def debian_ipykernel(kroot, test_cache):
    tar = debian_tarball(test_cache, include=("python3", "python3-ipykernel"))
    if tar is None:
        pytest.skip("mmdebstrap is not installed (needed for a Debian image with python3-ipykernel)")
    return import_image(kroot, tar, "debian-ipykernel:bookworm").ref


def test_kernel_in_a_debian_image(spec, kroot, debian_ipykernel, tmp_path):
    (tmp_path / "hello.txt").write_text("from the host")
    name = spec("jbx-debian", image=debian_ipykernel, memory="256m")
    with kernel(name, cwd=tmp_path) as k:
        assert k.value("sys.executable if (sys := __import__('sys')) else ''") == "/usr/bin/python3"
        assert "bookworm" in k.value("open('/etc/os-release').read()")
        assert k.value("open('hello.txt').read()") == "from the host"
        assert k.value("__import__('ipykernel').__file__").startswith("/usr/lib/python3/dist-packages/")
        usage = k.usage()  # the extension also works on Debian's older ipykernel
        assert usage["host_virtual_memory"]["total"] == 256 * MiB
        cid = k.provisioner.container_id
    assert_nothing_left(kroot, [cid])


# -- bad input ----------------------------------------------------------------------------------
def start_fails(name) -> KernelStartError:
    km = KernelManager(kernel_name=name)
    with pytest.raises(KernelStartError) as info:
        km.start_kernel()
    assert not km.has_kernel
    kdir = km.provisioner.kernel_dir
    assert kdir is None or not os.path.exists(kdir)  # jupyter_server calls no cleanup() after a failed start
    km.cleanup_resources()
    return info.value


def test_unknown_image_fails_with_the_message(spec, kroot):
    err = start_fails(spec("jbx-noimage", image="no-such-image:1.0"))
    assert "No such image" in str(err) and "no-such-image" in str(err)
    assert err.log_message and "No such image" in err.log_message  # what jupyter_server sends JupyterLab
    assert_nothing_left(kroot, [])


def test_bad_limit_in_kernel_json_fails_with_the_message(spec, kroot, jpath):
    name = spec("jbx-badlimit", memory="256m")
    path = Path(KernelSpecManager().get_kernel_spec(name).resource_dir) / "kernel.json"
    data = json.loads(path.read_text())
    data["metadata"]["kernel_provisioner"]["config"]["memory"] = "lots"  # edited by hand
    path.write_text(json.dumps(data))
    err = start_fails(name)
    assert "invalid memory limit" in str(err) and "lots" in str(err)
    assert_nothing_left(kroot, [])


def test_image_without_python_fails_with_the_message(spec, kroot, busybox_tar):
    ref = import_image(kroot, busybox_tar, "busybox:latest").ref
    err = start_fails(spec("jbx-busybox", image=ref))
    assert "python3" in str(err) and "not found" in str(err)
    assert_nothing_left(kroot, [])


def test_image_without_ipykernel_fails_with_its_stderr(spec, kroot, debian_tar):
    ref = import_image(kroot, debian_tar, "debian-python:bookworm").ref
    err = start_fails(spec("jbx-noipykernel", image=ref))
    assert "exited with code 1" in str(err)
    assert "No module named ipykernel" in str(err)  # the container's stderr reaches the user
    assert_nothing_left(kroot, [])


class JupyterServer:
    """``jupyter server`` in a subprocess, as JupyterLab's backend; ``.log`` holds its stderr after exit."""

    def __init__(self, tmp_path):
        pytest.importorskip("jupyter_server")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}",
             "--IdentityProvider.token=t0k", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0",
             "--allow-root"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = ""
        deadline = time.monotonic() + 60
        while True:
            try:
                self.request("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                assert self.proc.poll() is None, "jupyter_server exited"
                assert time.monotonic() < deadline, "jupyter_server did not come up"
                time.sleep(0.1)

    def request(self, method, path, payload=None):
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(f"{self.base}{path}?token=t0k", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=90) as r:
            body = r.read()
            return json.loads(body) if body else None

    def error(self, method, path, payload=None):
        with pytest.raises(urllib.error.HTTPError) as info:
            self.request(method, path, payload)
        return info.value.code, json.loads(info.value.read())

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.send_signal(signal.SIGINT)
        try:
            _, self.log = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.log = self.proc.communicate()


def test_jupyter_server_reports_the_failure_to_the_browser(spec, kroot, tmp_path):
    """POST /api/sessions and /api/kernels as JupyterLab does: the JSON error carries the kernel's message."""
    name = spec("jbx-server-noimage", image="no-such-image:2")
    server = JupyterServer(tmp_path)
    try:
        # a notebook opened with that kernel (the sessions handler wraps the error itself)
        code, reply = server.error("POST", "/api/sessions", {"path": "x.ipynb", "type": "notebook",
                                                             "name": "x.ipynb", "kernel": {"name": name}})
        assert code == 500
        assert "No such image: no-such-image:2" in reply["message"]
        # a bare kernel start: any other exception would reach the browser as "Unhandled error"
        code, reply = server.error("POST", "/api/kernels", {"name": name})
        assert code == 500
        assert "No such image: no-such-image:2" in reply["message"]
        assert reply["reason"] == "Kernel failed to start"
    finally:
        server.stop()
    assert "No such image: no-such-image:2" in server.log  # and it is in the server's log
    assert_nothing_left(kroot, [])


def test_a_notebook_session_in_jupyter_server(spec, kroot, tmp_path):
    """jupyter_server's own (async) kernel manager: start, restart and shutdown a session's kernel."""
    (tmp_path / "nb").mkdir()
    name = spec("jbx-server-ok", memory="256m")
    server = JupyterServer(tmp_path)
    seen = []
    try:
        session = server.request("POST", "/api/sessions", {"path": "nb/x.ipynb", "type": "notebook",
                                                           "name": "x.ipynb", "kernel": {"name": name}})
        kid = session["kernel"]["id"]

        def kernel_container():
            found = [c for c in jupybox.containers(root=kroot)
                     if c.config["spec"]["labels"].get("io.jupybox.kernel.id") == kid]
            assert len(found) == 1
            return found[0]

        def ask(code):
            """Run code in the server's kernel, through its connection file (as a second client would)."""
            from jupyter_client import BlockingKernelClient

            kc = BlockingKernelClient(connection_file=str(tmp_path / "rt" / f"kernel-{kid}.json"))
            kc.load_connection_file()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=REPLY_TIMEOUT)
                out = []
                kc.execute_interactive(code, timeout=REPLY_TIMEOUT, output_hook=lambda m: out.append(
                    m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
                return "".join(out).strip()
            finally:
                kc.stop_channels()

        first = kernel_container()
        seen.append(first.id)
        assert ask("import os; print(os.getcwd(), os.environ['JUPYBOX_CONTAINER_ID'])") == \
            f"{tmp_path / 'nb'} {first.id}"  # in the notebook's directory, in its container
        server.request("POST", f"/api/kernels/{kid}/restart")  # JupyterLab's "Restart Kernel"
        second = kernel_container()
        seen.append(second.id)
        assert second.id != first.id
        assert ask("import os; print(os.environ['JUPYBOX_CONTAINER_ID'])") == second.id
        server.request("DELETE", f"/api/sessions/{session['id']}")  # closing the notebook
        deadline = time.monotonic() + REPLY_TIMEOUT
        while jupybox.containers(all=True, root=kroot) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jupybox.containers(all=True, root=kroot) == []
    finally:
        server.stop()
    assert_nothing_left(kroot, seen)
