"""The real front end: JupyterLab on 127.0.0.1 driven by Playwright with Debian's Chromium.

A ``%%container`` cell burns CPU and allocates memory for a few seconds; the live chart widget must
appear, change while the cell runs, and be replaced by the static PNG when it ends. Screenshots
are kept in the test's artifacts directory (the final one is copied to docs/chart.png when that is
missing or JUPYBOX_UPDATE_DOCS=1).
Browsers are never downloaded: ``/usr/bin/chromium`` (apt: chromium) or the test is skipped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent.parent

CELL = """%%container -m 256m --cpus 0.5
import time
chunks = []
start = time.time()
while time.time() - start < 8:
    sum(range(100_000))
    if len(chunks) < 30 and time.time() - start > 1:
        chunks.append(bytearray(5 << 20))
        time.sleep(0.1)
print('allocated', sum(map(len, chunks)) >> 20, 'MiB')
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, jupybox_root, artifacts_dir):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browsers are never downloaded")
    pytest.importorskip("playwright")
    nbformat = pytest.importorskip("nbformat")
    notebooks = tmp_path / "lab"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("%load_ext jupybox"), nbformat.v4.new_code_cell(CELL)]
    nbformat.write(nb, notebooks / "chart.ipynb")
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYBOX_ROOT=str(jupybox_root), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"))
    log = open(artifacts_dir / "jupyterlab.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tmp_path / 'lab-settings'}",
         f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {artifacts_dir / 'jupyterlab.log'}") from None
                time.sleep(0.1)
        yield f"{base}/lab/tree/chart.ipynb?token={token}"
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)  # the server shuts its kernels down
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        except ProcessLookupError:
            pass
        log.close()


def test_live_chart_in_jupyterlab(lab, artifacts_dir):
    from playwright.sync_api import sync_playwright

    import jupybox

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(lab)
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }", timeout=120_000)
            # not awaited: the command's promise resolves only when every cell has run
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

            live = page.wait_for_selector(".jupybox-live-chart", timeout=120_000)
            first = None
            while first is None:  # the first frame (the image is empty until the first sample)
                src = live.get_attribute("src") or ""
                first = live.screenshot() if src.startswith("blob:") else None
                time.sleep(0.05)
            page.screenshot(path=str(artifacts_dir / "1-live.png"))
            changed = None
            while changed is None:  # a later frame differs, and the widget is still the live one
                assert page.query_selector(".jupybox-live-chart") is not None, "the cell ended before the chart changed"
                shot = live.screenshot()
                if shot != first:
                    changed = shot
                time.sleep(0.05)
            page.screenshot(path=str(artifacts_dir / "2-live-changed.png"))
            assert len(jupybox.containers()) == 1  # it changed while the container was running

            # when the cell ends, the widget is replaced by the static PNG and the summary follows
            page.wait_for_selector(".jp-OutputArea-output img[src^='data:image/png']", timeout=120_000)
            page.wait_for_function("() => !document.querySelector('.jupybox-live-chart')", timeout=60_000)
            page.wait_for_selector("text=allocated 150 MiB", timeout=60_000)
            summary = page.wait_for_selector("text=/exited 0 · wall/", timeout=60_000)
            assert "/ 256MiB" in summary.inner_text()
            final = page.query_selector(".jp-OutputArea-output img[src^='data:image/png']")
            final.scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts_dir / "3-final.png"))
            final.screenshot(path=str(artifacts_dir / "chart.png"))
        finally:
            browser.close()
    docs = REPO / "docs" / "chart.png"
    if os.environ.get("JUPYBOX_UPDATE_DOCS") or not docs.exists():  # the README's picture
        docs.parent.mkdir(exist_ok=True)
        shutil.copyfile(artifacts_dir / "3-final.png", docs)
