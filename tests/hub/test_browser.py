"""A student's day: log in through headless Chromium (Playwright, Debian's chromium, run inside the
test's network namespace), the server starts in a jupybox container, a notebook cell shows the
container's PID namespace and its memory limit, and the stop leaves nothing but the home volume.
Browsers are never downloaded: without /usr/bin/chromium the test is skipped."""

from __future__ import annotations

import json
import os
import re

import pytest

from jupybox.testing.leaks import cgroups

pytestmark = [pytest.mark.root, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

CELL = """import os
print("pidns", os.readlink("/proc/self/ns/pid"))
for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    if os.path.exists(f):
        print("memlimit", open(f).read().strip())
"""


def _home(hubs, user: str, uid: int, gid: int) -> None:
    """The user's home volume with a notebook in it (and JupyterLab's news question answered)."""
    import nbformat

    from jupybox.paths import Layout
    from jupybox.runtime.volumes import Volumes

    data = Volumes(Layout(hubs.root)).ensure(f"jupyterhub-user-{user}").data
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nbformat.write(nb, data / "check.ipynb")
    settings = data / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    for dirpath, dirnames, filenames in os.walk(data):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.chown(name, uid, gid)


def test_a_student_logs_in_and_a_cell_shows_the_container(hubs, tmp_path, artifacts_dir):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browsers are never downloaded")
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    hub = hubs.start("""
        c.Spawner.mem_limit = "300M"
        c.Spawner.default_url = "/lab/tree/check.ipynb"
        c.Spawner.args.append("--LabApp.expose_app_in_browser=True")
        """)
    uid = 0 if "uid = 0" in hub.work.joinpath("jupyterhub_config.py").read_text() else 1000
    _home(hubs, "alice", uid, 0 if uid == 0 else 100)
    chromium = hubs.ns.wrap(CHROMIUM, tmp_path)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"{hub.base}/hub/login")
            page.fill("#username_input", "alice")
            page.fill("#password_input", "any")
            page.screenshot(path=str(artifacts_dir / "1-login.png"))
            page.click("#login_submit")
            page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }", timeout=180_000)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            output = page.wait_for_selector("text=/memlimit \\d+/", timeout=120_000)
            text = output.inner_text()
            page.screenshot(path=str(artifacts_dir / "2-cell.png"))
        finally:
            browser.close()

    info = hubs.inspect("jupyterhub-alice")
    inside = os.readlink(f"/proc/{info['State']['Pid']}/ns/pid")
    assert f"pidns {inside}" in text
    assert inside != os.readlink("/proc/self/ns/pid")  # not the hub's (nor this test's)
    assert f"memlimit {300 << 20}" in text

    hub.stop_server("alice")
    assert hubs.container_names() == []
    assert hubs.eventually(lambda: not hubs.left_links([info["Id"]]))
    assert hubs.eventually(lambda: not [c for c in cgroups() if info["Id"] in c])
    assert json.loads(hubs.jb("volume", "inspect", "jupyterhub-user-alice").stdout)[0]["Name"]
