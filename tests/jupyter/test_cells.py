"""Issue 19 (cells that feel like IPython cells) and issue 25 (the store's service under chaos), through a
real IPython shell and real containers on the built-in ``host`` image (root needed).

Interrupts are sent by handshakes (a line reaching the cell) or at offsets drawn with a fixed
seed; nothing asserts a duration.
"""

from __future__ import annotations

import _thread
import os
import random
import stat
import threading
import time

import pytest

pytestmark = [pytest.mark.root]

IPython = pytest.importorskip("IPython")

from IPython.utils.capture import capture_output  # noqa: E402

import jupybox  # noqa: E402
from jupybox import errors  # noqa: E402
from jupybox.jupyter import cellrunner, transfer  # noqa: E402
from jupybox.jupyter.chartsession import container_name  # noqa: E402

MiB = 1 << 20


@pytest.fixture
def ip(module_root):
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "jupybox")
    shell.display_formatter.active_types = list(shell.display_formatter.formatters)
    magics = shell._jupybox_magics
    keys = ("chart", "summary", "interrupt_grace", "chart_after", "live_chart", "max_output")
    saved = {k: getattr(magics, k) for k in keys}
    magics.chart = False
    magics.summary = False
    yield shell
    for k, v in saved.items():
        setattr(magics, k, v)
    deadline = time.monotonic() + 10
    while jupybox.containers(all=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = jupybox.containers(all=True)
    for c in left:
        c.remove(force=True)
    assert left == [], f"containers left behind: {left}"


def cell_dirs(root) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(root, "cells")))
    except FileNotFoundError:
        return []


def wait_for(predicate, what: str, bound: float = 30.0):
    deadline = time.monotonic() + bound
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


class Lines:
    """sys.stdout stand-in that calls ``on_text`` with all the text so far."""

    def __init__(self, on_text=None):
        self.parts, self.on_text, self.lock = [], on_text, threading.Lock()

    def write(self, text):
        with self.lock:
            self.parts.append(text)
            if self.on_text is not None:
                self.on_text("".join(self.parts))
        return len(text)

    def flush(self):
        pass

    @property
    def text(self):
        return "".join(self.parts)


# -- 19.1: a quick cell gets no chart -----------------------------------------------------------
def test_a_quick_cell_shows_only_its_summary(ip):
    m = ip._jupybox_magics
    m.chart = m.summary = True
    m.chart_after = 3600  # "quick" whatever the machine's load
    with capture_output() as cap:
        ip.run_cell_magic("container", "", "print('hi')\n")
    assert [sorted(o.data) for o in cap.outputs] == [["text/html", "text/plain"]]
    assert "exited 0" in cap.outputs[0].data["text/plain"]
    m.chart_after = 0
    with capture_output() as cap:
        ip.run_cell_magic("container", "", "print('hi')\n")
    assert ["image/png", "text/plain"] in [sorted(o.data) for o in cap.outputs]
    m.chart_after = 3600
    with capture_output() as cap:
        ip.run_cell_magic("container", "--chart", "print('hi')\n")  # asked for: drawn anyway
    assert ["image/png", "text/plain"] in [sorted(o.data) for o in cap.outputs]
    with capture_output() as cap:  # the line magic's run too (it drew a chart of no sample)
        ip.run_line_magic("container", "run --rm host true")
    assert [sorted(o.data) for o in cap.outputs] == [["text/html", "text/plain"]]
    assert "exited 0" in cap.outputs[0].data["text/plain"]


# -- 19.2: one traceback on an interrupt ---------------------------------------------------------
def test_an_interrupt_shows_one_traceback_of_the_users_frames(ip, monkeypatch):
    ip._jupybox_magics.interrupt_grace = 30
    sent = []

    def on_text(text):
        if "started\n" in text and not sent:
            sent.append(1)
            _thread.interrupt_main()

    err = Lines()
    monkeypatch.setattr("sys.stdout", Lines(on_text))
    monkeypatch.setattr("sys.stderr", err)
    res = ip.run_cell("%%container\nimport time\nprint('started')\ntime.sleep(600)\n")
    e = res.error_in_exec
    assert isinstance(e, KeyboardInterrupt)
    shown = e._render_traceback_()
    text = "\n".join(shown)
    assert "Cell In[" in text and ", line 4" in text and "----> 4 time.sleep(600)" in text, text
    assert shown[-1].startswith("KeyboardInterrupt")
    assert "runner.py" not in text and "cellrunner" not in text and "magics.py" not in text
    assert "Traceback" not in err.text  # the container printed none of its own
    assert ip._jupybox_magics.last.result["exit_code"] == 130


# -- 19.3: line numbers are the notebook cell's ------------------------------------------------
def test_a_traceback_numbers_the_notebook_cells_lines(ip):
    res = ip.run_cell("%%container\nx = 1\n\ndef f(v):\n    return 1 / v\nf(0)\n")
    e = res.error_in_exec
    assert isinstance(e, errors.ContainerError) and e.exit_code == 1
    text = "\n".join(e._render_traceback_())
    n = res.execution_count
    assert f"Cell In[{n}], line 6" in text and "----> 6 f(0)" in text, text
    assert f"Cell In[{n}], line 5, in f(v)" in text and "----> 5     return 1 / v" in text
    assert text.endswith("ZeroDivisionError: division by zero")
    res = ip.run_cell("%%container\nx = (\n")
    text = "\n".join(res.error_in_exec._render_traceback_())
    assert f"Cell In[{res.execution_count}], line 2" in text and "SyntaxError" in text


# -- 19.4: the last expression ------------------------------------------------------------------
def test_the_last_expression_is_displayed_and_html_is_cleaned(ip):
    res = ip.run_cell("%%container\nclass T:\n    def _repr_html_(self):\n"
                      "        return '<b onclick=\"x()\">bold</b><script>alert(1)</script>'\n"
                      "    def __repr__(self):\n        return 'T()'\nT()\n")
    assert res.success
    data, _ = res.result._repr_mimebundle_()
    assert data["text/plain"] == "T()" and data["text/html"] == "<b>bold</b>"
    assert ip.run_cell("%%container\n41 + 1\n").result._repr_mimebundle_()[0]["text/plain"] == "42"
    assert ip.run_cell("%%container\n41 + 1;\n").result is None  # a trailing ';' hides it, as in IPython


# -- 19.5: functions and classes travel; what cannot is named ----------------------------------
def test_functions_and_classes_defined_in_the_notebook_travel(ip):
    ip.run_cell("import threading\ndef helper(x):\n    return x * 2\nclass Point:\n    def __init__(self, x):\n"
                "        self.x = x\nscale = lambda p: Point(helper(p.x))\nlock = threading.Lock()\n")
    ip.run_cell_magic("container", "-i helper,Point,scale -o moved,back",
                      "moved = scale(Point(21)).x\ndef back(v):\n    return v - 1\n")
    assert ip.user_ns["moved"] == 42 and ip.user_ns["back"](1) == 0
    with pytest.raises(transfer.TransferError, match=r"-i lock: cannot send a lock .*open files, locks, sockets"):
        ip.run_cell_magic("container", "-i helper,lock", "pass\n")


# -- 19.6: -i counts once against -m, and an OOM while loading says so ---------------------------
def test_a_big_input_counts_once_against_the_memory_limit(ip):
    ip.user_ns["arr"] = b"x" * (200 * 10**6)
    try:
        ip.run_cell_magic("container", "-m 320m -i arr -o n", "n = len(arr)\n")
        assert ip.user_ns["n"] == 200 * 10**6
        with pytest.raises(errors.ContainerOOMError) as info:
            ip.run_cell_magic("container", "-m 128m -i arr", "print('ran')\n")
        msg = str(info.value)
        assert "while loading -i arr (190.7MiB) under a 128MiB limit" in msg, msg
        assert info.value.limit == 128 * MiB
    finally:
        del ip.user_ns["arr"]


# -- 19.7: the recorder is ready before the command starts --------------------------------------
def test_the_recorder_is_sampling_before_the_start(ip, monkeypatch):
    m = ip._jupybox_magics
    m.chart = True
    seen = []
    real = jupybox.run

    def run(*a, **k):
        session = m.last.session
        seen.append(session is not None and session.recorder._thread.is_alive())
        return real(*a, **k)

    monkeypatch.setattr(jupybox, "run", run)
    ip.run_cell_magic("container", "--chart --rate 50", "import time\ntime.sleep(0.5)\n")
    assert seen == [True]
    series = m.last.series
    assert len(series) >= 2 and series.t[0] <= series.t[-1]


# -- 19.9: ps shows the cell, in a table that fits ----------------------------------------------
def test_ps_shows_the_cell_not_the_runner(ip):
    c = ip.run_cell_magic("container", "--bg --name pscell", "import time\ntime.sleep(600)\n")
    try:
        ps = ip.run_line_magic("container", "ps")
        row = [r for r in ps.table if r["Names"] == "pscell"][0]
        assert row["Command"].startswith("%%container In[") and "import time" in row["Command"]
        html = ps._repr_html_()
        assert "runner.py" not in html and "jbx-clip" in html and ">pscell<" in html
    finally:
        c.remove(force=True)


# -- 19.10 / 19.11 ---------------------------------------------------------------------------------
def test_last_and_max_output(ip, monkeypatch):
    out = Lines()
    monkeypatch.setattr("sys.stdout", out)
    ip.run_cell_magic("container", "--max-output 4", "for i in range(50):\n    print(i)\n")
    last = ip.run_line_magic("container", "last")
    assert last is ip._jupybox_magics.last and last.result["exit_code"] == 0
    from jupybox.jupyter import last as public_last

    assert public_last() is last
    name = last.container.name
    assert out.text == ("0\n1\n[jupybox: more than 2 lines: the rest is held back, its last 2 lines come when the "
                        f"cell ends]\n... 46 lines skipped, full log: %container logs {name}\n48\n49\n")
    full = Lines()
    monkeypatch.setattr("sys.stdout", full)
    ip.run_line_magic("container", f"logs {name}")
    assert full.text == "".join(f"{i}\n" for i in range(50))


# -- 25.2: an interrupted --bg start leaves nothing or hands the container over ------------------
@pytest.mark.slow
def test_interrupting_bg_starts_at_random_moments(ip, module_root, monkeypatch):
    """Interrupts 0-50 ms after the cell starts (a fixed seed; a few later ones reach the moment
    the start completes, whatever the machine's speed). Either nothing is left (no container,
    no cell files) or the start completed and the container was handed over: its name printed
    (the interrupt then came after the cell's work, as in a plain cell), and it ran the cell."""
    rng = random.Random(1925)
    handed, interrupted = 0, 0
    before = cell_dirs(module_root)
    for i in range(12):
        offset = rng.uniform(0, 0.05) if i < 8 else rng.uniform(0.05, 0.6)
        out = Lines()
        monkeypatch.setattr("sys.stdout", out)
        timer = threading.Timer(offset, _thread.interrupt_main)
        try:
            timer.start()
            if i % 2:
                ip.run_cell_magic("container", "--bg", "print('bg ran')\n")
            else:
                ip.run_cell_magic("container", "--bg sh", "echo bg ran\n")
            timer.join()
        except KeyboardInterrupt:
            timer.join()
        left = jupybox.containers(all=True)
        named = out.text.split()
        if not named:
            interrupted += 1
            assert left == [], f"offset {offset:.3f}: an interrupted start left {left}"
            assert set(cell_dirs(module_root)) <= set(before)  # (an earlier --rm cell's may go meanwhile)
            continue
        handed += 1
        assert [container_name(c) for c in left] == named, f"offset {offset:.3f}: {left} but {named} printed"
        c = left[0]
        assert c.wait(60) == 0, c.logs()
        assert c.logs() == "bg ran\n"
        c.remove()
        assert set(cell_dirs(module_root)) <= set(before)  # its files went with it


# -- 25.5: the cell's files live under the store and go with the container -------------------------
def test_cell_files_are_private_and_go_with_the_container(ip, module_root):
    ip.user_ns["secret"] = "s3cret"
    before = cell_dirs(module_root)  # a capped cell's saved log may be there (this kernel's)
    c = ip.run_cell_magic("container", "--bg -i secret", "import time\ntime.sleep(600)\n")
    try:
        dirs = sorted(set(cell_dirs(module_root)) - set(before))
        assert len(dirs) == 1
        d = os.path.join(module_root, "cells", dirs[0])
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
        assert c.config["spec"]["labels"]["jupybox.cell-files"] == dirs[0]
    finally:
        c.remove(force=True)
    assert cell_dirs(module_root) == before
    ip.run_cell_magic("container", "-i secret", "assert secret == 's3cret'\n")
    wait_for(lambda: cell_dirs(module_root) == before, "an --rm cell's files were not removed with it")


# -- 25.7: a charted cell leaves no widget ---------------------------------------------------------
@pytest.mark.slow
def test_live_charts_close_every_widget_they_made(module_root):
    """In a real kernel (a front end's widgets forced on): the widgets a chart made are all closed."""
    pytest.importorskip("ipywidgets")
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=dict(os.environ, JUPYBOX_ROOT=str(module_root)))

    def run(code):
        out = []
        reply = kc.execute_interactive(code, timeout=120, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)

    try:
        run("%load_ext jupybox\n%config JupyboxMagics.live_chart = 'always'\n%config JupyboxMagics.chart_after = 0\n"
            "from jupybox.jupyter.widgets import open_count")
        run("%%container\nimport time\ntime.sleep(0.3)")
        before = int(run("print(open_count())"))
        for _ in range(3):
            run("%%container\nimport time\ntime.sleep(0.3)")
            assert run("from jupybox.jupyter import last\nprint(last().session.shown)") == "True\n"
        assert int(run("print(open_count())")) == before
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_runner_source_is_standalone():
    """The runner runs in images without jupybox: it imports only the standard library."""
    import ast

    tree = ast.parse(cellrunner.RUNNER.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "jupybox" not in names


# -- 25.5: a killed kernel leaves no cell files that nothing collects -----------------------------
def _kernel(root):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=dict(os.environ, JUPYBOX_ROOT=str(root)))
    reply = kc.execute_interactive("%load_ext jupybox\n%config JupyboxMagics.chart = False\n"
                                   "%config JupyboxMagics.summary = False\nsecret = 's3cret' * 1000", timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    return km, kc


def _until_printed(kc, msg_id: str, text: str) -> None:
    """iopub until ``text`` appears in the output of request ``msg_id``."""
    seen = ""
    while text not in seen:
        msg = kc.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            seen += msg["content"]["text"]
        assert not (msg["msg_type"] == "error" and msg["parent_header"].get("msg_id") == msg_id), msg["content"]


@pytest.mark.slow
def test_a_killed_kernels_cell_files_go(module_root, tmp_path):
    """restart_kernel(now=True) and kill -9 of a kernel during Python cells (issue 25.5): the cells'
    files (cell.py, the pickled -i values) go with their containers (a --bg container keeps its
    own until it is removed), and a directory whose kernel died before any container named it is
    collected by `jupybox prune`. Nothing stays."""
    root = tmp_path / "store"
    km, kc = _kernel(root)
    try:
        msg_id = kc.execute("%%container --bg --name keeps -i secret\nimport time\ntime.sleep(600)\n")
        _until_printed(kc, msg_id, "keeps")
        msg_id = kc.execute("%%container -i secret\nprint('started', flush=True)\nimport time\ntime.sleep(600)\n")
        _until_printed(kc, msg_id, "started")
        assert len(cell_dirs(root)) == 2
        km.restart_kernel(now=True)  # SIGKILL: the kernel has no say
        kc.wait_for_ready(timeout=120)
        keeps = jupybox.container("keeps", root=root)
        wait_for(lambda: [c.id for c in jupybox.containers(all=True, root=root)] == [keeps.id],
                 "the attached cell's container stayed")
        wait_for(lambda: cell_dirs(root) == [keeps.config["spec"]["labels"]["jupybox.cell-files"]],
                 "the attached cell's files stayed")
        keeps.remove(force=True)
        assert cell_dirs(root) == []

        # kill -9 while the cell is being prepared or started: either its container took the files
        # (and goes with them) or none did yet (prune collects them: their maker is gone)
        reply = kc.execute_interactive("%load_ext jupybox\n%config JupyboxMagics.chart = False\n"
                                       "big = b'x' * (200 << 20)", timeout=120)
        assert reply["content"]["status"] == "ok"
        kc.execute("%%container -i big\nimport time\ntime.sleep(600)\n")
        wait_for(lambda: cell_dirs(root), "no cell directory was made")
        os.kill(km.provisioner.pid, 9)
        wait_for(lambda: not km.is_alive(), "the kernel survived kill -9")
        wait_for(lambda: jupybox.containers(all=True, root=root) == [], "the killed kernel's container stayed")
        jupybox.prune(root=root)
        assert cell_dirs(root) == []
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        from jupybox import api
        from jupybox.testing.leaks import kill_processes_under, stop_services

        client = api._clients.pop(api._key(str(root)), None)  # noqa: SLF001 - this process's connection
        if client is not None:
            client.close()
        stop_services(root)
        kill_processes_under(root)


# -- 25.7: the service client keeps a bounded number of exits -------------------------------------
def test_the_clients_exits_stay_bounded(ip, module_root, monkeypatch):
    from jupybox import api
    from jupybox.service import client as service_client

    monkeypatch.setattr(service_client, "KEPT_EXITS", 4)
    for _ in range(8):
        ip.run_cell_magic("container", "--no-chart sh", "true\n")
    client = api.launcher(str(module_root))
    assert 0 < len(client._exits) <= 4  # noqa: SLF001 - what grew for ever (issue 25.7)
