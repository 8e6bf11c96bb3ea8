"""Notebooks executed by nbclient in a real ipykernel (the venv's), with the real magics.

The kernel gets $JUPYBOX_ROOT from the test's store. Interrupts go through the kernel manager
(SIGINT to the kernel, like the stop button), and must leave no container and no cgroup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(path: Path, root: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(tmp_path)}})
    assert os.environ["JUPYBOX_ROOT"] == str(root)  # the kernel inherits the test's store
    client.execute()
    return nb


def outputs(cell) -> list:
    return cell.get("outputs", [])


def text_of(cell, name="stdout") -> str:
    return "".join(o["text"] for o in outputs(cell) if o["output_type"] == "stream" and o["name"] == name)


def cell_with(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def jupybox_cgroups() -> set[str]:  # every cgroup with "jupybox" in its path (the parents excepted)
    from jupybox.testing.leaks import cgroups

    return cgroups()


def leaf_ids(paths: set[str]) -> set[str]:
    return {os.path.basename(p) for p in paths}


def test_magics_notebook(jupybox_root, tmp_path):
    nb = execute(HERE / "notebooks" / "magics.ipynb", jupybox_root, tmp_path)

    streamed = cell_with(nb, "for i in range(3)")
    assert text_of(streamed) == "line 0\nline 1\nline 2\n"
    assert text_of(streamed, "stderr") == "to stderr\n"

    # -i/-o: the assertion cell ran (it would have stopped the run otherwise) and printed
    assert text_of(cell_with(nb, "assert total == 45")) == "round trip ok\n"

    failed = cell_with(nb, "sys.exit(3)")
    errs = [o for o in outputs(failed) if o["output_type"] == "error"]
    assert [(e["ename"], e["evalue"]) for e in errs] == [("ContainerError", errs[0]["evalue"])]
    assert "exited with code 3" in errs[0]["evalue"] and len(errs[0]["traceback"]) == 1  # one line
    assert text_of(failed) == "failing on purpose\n"

    oom = cell_with(nb, "print('survived')")
    errs = [o for o in outputs(oom) if o["output_type"] == "error"]
    assert [e["ename"] for e in errs] == ["ContainerOOMError"]
    assert "memory limit 64MiB" in errs[0]["evalue"] and "peak" in errs[0]["evalue"]
    assert "survived" not in text_of(oom)
    assert text_of(cell_with(nb, "except jupybox.ContainerOOMError")) == "caught ContainerOOMError\n"

    # the chart: a PNG and the one-line summary in the saved outputs; no widget in a headless run
    for c in (streamed, cell_with(nb, "-i numbers,config"), failed, oom):
        kinds = [set(o.get("data", {})) for o in outputs(c) if o["output_type"] == "display_data"]
        assert {"image/png", "text/plain"} in kinds, kinds
        assert not any(WIDGET_VIEW in k for k in kinds)
    summaries = [o["data"]["text/plain"] for c in nb.cells for o in outputs(c)
                 if o["output_type"] == "display_data" and "text/html" in o.get("data", {})]
    assert any("exited 0" in s and "peak memory" in s and "/ 256MiB" in s for s in summaries), summaries
    assert any("OOM-killed (exit 137)" in s for s in summaries), summaries
    assert any("exited 3" in s for s in summaries), summaries
    assert "widgets" not in nb.metadata  # no widget state saved either

    ps = cell_with(nb, "%container ps -a")
    html = [o["data"]["text/html"] for o in outputs(ps) if o["output_type"] == "execute_result"]
    assert html and "<table" in html[0] and "no containers" in html[0]


def test_quickstart_notebook(jupybox_root, tmp_path):
    path = REPO / "notebooks" / "00-quickstart.ipynb"
    # (committed with its outputs, issue 19.13: tests/notebooks checks they are the current code's)
    nb = execute(path, jupybox_root, tmp_path)  # every claim of its text is asserted in its cells
    pngs = [o for c in nb.cells for o in outputs(c) if "image/png" in o.get("data", {})]
    assert len(pngs) >= 1  # a quick cell shows only its summary (issue 19.1)
    import jupybox

    assert jupybox.containers(all=True) == []


def test_interrupt_through_the_kernel_manager_leaves_nothing(jupybox_root):
    """The stop button: SIGINT to the kernel during ``%%container sh -c 'sleep 60'``.

    cgroups are host-wide (other stores' containers show up there), so the cgroups checked
    are those of this kernel: named by the ids of its container and of the store's service's
    prewarmed sandboxes, whose directories appear under this test's store."""
    from jupyter_client.manager import start_new_kernel

    import jupybox

    seen: set[str] = set()

    def ours() -> set[str]:
        try:
            seen.update(os.listdir(jupybox_root / "containers"))
        except FileNotFoundError:
            pass
        return {i for i in leaf_ids(jupybox_cgroups()) if i in seen}

    km, kc = start_new_kernel(kernel_name="python3", env=dict(os.environ, JUPYBOX_ROOT=str(jupybox_root)))
    try:
        reply = kc.execute_interactive("%load_ext jupybox", timeout=60)
        assert reply["content"]["status"] == "ok"
        msg_id = kc.execute("%%container sh -c 'sleep 60'\n# the cell is sh's stdin, unused with -c\n")
        deadline = time.monotonic() + 60
        while not jupybox.containers() and time.monotonic() < deadline:
            time.sleep(0.02)
        running = jupybox.containers()
        assert len(running) == 1 and running[0].status == "running"
        cid = running[0].id
        assert cid in ours()  # its cgroup exists, and we can see it
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert jupybox.containers(all=True) == []  # stopped and removed before the cell returned
        left = ours()
        assert cid not in left
        assert len(left) <= 2  # while the kernel lives, the store's service keeps a pool of two prewarmed sandboxes
        reply = kc.execute_interactive("print('kernel alive')", timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours() == set()
    assert jupybox.containers(all=True) == []
    assert not any((jupybox_root / "containers").iterdir()), "staged directories left behind"


def error_outputs(cell) -> list:
    return [o for o in outputs(cell) if o["output_type"] == "error"]


def test_cells_feel_like_ipython_cells(jupybox_root, tmp_path):
    """Issue 19: a quick cell has no chart, a traceback names the notebook cell's lines, the last
    expression is displayed (a DataFrame as HTML, a figure as PNG), functions cross with -i, the
    last run has a public name, output is capped with the full log kept, --help says %%container."""
    nb = execute(HERE / "notebooks" / "magics.ipynb", jupybox_root, tmp_path)

    quick = cell_with(nb, "print('quick')")
    kinds = [set(o.get("data", {})) for o in outputs(quick) if o["output_type"] == "display_data"]
    assert not any("image/png" in k for k in kinds), kinds  # 1: only the summary
    assert any("exited 0" in o["data"]["text/plain"] for o in outputs(quick) if o["output_type"] == "display_data")

    failing = cell_with(nb, "f(0)")
    errs = error_outputs(failing)
    assert len(errs) == 1 and errs[0]["ename"] == "ContainerError"  # 2/3: one traceback, the cell's own
    tb = "\n".join(errs[0]["traceback"])
    n = failing["execution_count"]
    assert f"Cell In[{n}], line 5" in tb and "----> 5 f(0)" in tb, tb  # the notebook cell's line 5
    assert f"Cell In[{n}], line 3, in f(x)" in tb and "----> 3     return 1 / x" in tb
    assert tb.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "runner.py" not in tb and "cellrunner" not in tb and "magics.py" not in tb
    assert text_of(failing, "stderr") == ""

    frame = cell_with(nb, "pd.DataFrame")
    result = [o for o in outputs(frame) if o["output_type"] == "execute_result"]
    assert len(result) == 1 and "<table" in result[0]["data"]["text/html"]  # 4: rich, as IPython
    assert "Oslo" in result[0]["data"]["text/plain"] and "<script" not in result[0]["data"]["text/html"]
    figure = cell_with(nb, "plt.title('squares')")
    pngs = [o for o in outputs(figure) if o["output_type"] == "display_data" and "image/png" in o["data"]
            and "Figure" in o["data"]["text/plain"]]
    assert len(pngs) == 1

    assert text_of(cell_with(nb, "assert results == [6, 6]")) == "functions crossed\n"  # 5

    assert text_of(cell_with(nb, "run = %container last")) == "0 True\n"  # 10

    capped = text_of(cell_with(nb, "--max-output 20"))  # 11: head, marker, tail
    lines = capped.splitlines()
    assert lines[:10] == [f"row {i}" for i in range(10)]
    assert lines[-10:] == [f"row {i}" for i in range(190, 200)]
    assert any(line.startswith("... 180 lines skipped, full log: %container logs ") for line in lines), lines
    assert len(lines) == 22
    assert text_of(cell_with(nb, "%container logs --tail 3")) == "row 197\nrow 198\nrow 199\n"

    helptext = text_of(cell_with(nb, "%%container --help"))
    assert "usage: %%container" in helptext and "usage: %container " not in helptext  # 9
    assert helptext.count("usage:") == 1
