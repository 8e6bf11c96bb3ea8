"""``%%compose`` and ``%compose`` through IPython: the live table that becomes static, -o, the line
verbs on the last project, errors as UsageErrors naming the cell's line.

In this process, services use ``network_mode: none`` (no bridge may be made in the host's
namespace); the published-address test runs IPython in a network namespace of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.root]

IPython = pytest.importorskip("IPython")

from IPython.core.error import UsageError as IPythonUsageError  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402

from jupybox.testing import import_image  # noqa: E402

CELL = """\
services:
  ticker:
    image: busybox:latest
    command: sh -c 'echo first tick; while true; do sleep 1; done'
    network_mode: none
  idle:
    image: busybox:latest
    command: sleep 3600
    network_mode: none
    depends_on: [ticker]
"""


@pytest.fixture
def ip(jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, "busybox:latest")
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "jupybox")
    types = list(shell.display_formatter.active_types)
    shell.display_formatter.active_types = list(shell.display_formatter.format_types)  # as a kernel: HTML too
    yield shell
    shell.display_formatter.active_types = types
    import jupybox

    for c in jupybox.containers(all=True):
        c.remove(force=True)


def html_of(cap) -> list[str]:
    return [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]


def test_cell_up_live_table_line_verbs_and_down(ip):
    import jupybox

    with capture_output() as cap:
        ip.run_cell_magic("compose", "-p nbproj", CELL)
    frames = html_of(cap)
    assert "starting…" in frames[0]  # the live table
    final = frames[-1]
    assert "starting…" not in final  # ... became static
    assert "nbproj-ticker-1" in final and "nbproj-idle-1" in final and final.count(">running<") == 2
    names = sorted(c.name for c in jupybox.containers())
    assert names == ["nbproj-idle-1", "nbproj-ticker-1"]
    with capture_output() as cap:
        ip.run_line_magic("compose", "ps")
    assert "nbproj-ticker-1" in html_of(cap)[0] and "Up " in html_of(cap)[0]
    with capture_output() as cap:
        ip.run_line_magic("compose", "logs ticker")
    assert "nbproj-ticker-1 | \x1b[0mfirst tick" in cap.stdout
    with capture_output() as cap:
        ip.run_line_magic("compose", "down")
    assert "Container nbproj-ticker-1  Removed" in cap.stderr
    assert jupybox.containers(all=True) == []


def test_bad_cell_is_a_usage_error_naming_its_line_and_starts_nothing(ip):
    import jupybox

    with pytest.raises(IPythonUsageError, match=r"<cell>:4: services.web.imagee: additional property 'imagee'"):
        ip.run_cell_magic("compose", "-p bad", "services:\n  web:\n    image: busybox:latest\n    imagee: x\n")
    assert jupybox.containers(all=True) == []


def test_a_failure_is_shown_in_the_static_table(ip):
    import jupybox

    cell = CELL.replace("image: busybox:latest\n    command: sleep", "image: busybox:latest\n    user: nobody-here\n"
                        "    command: sleep")
    with capture_output() as cap, pytest.raises(IPythonUsageError, match="nobody-here"):
        ip.run_cell_magic("compose", "-p failing", cell)
    final = html_of(cap)[-1]
    assert "starting…" not in final and "nobody-here" in final
    with capture_output():
        ip.run_line_magic("compose", "down")
    assert jupybox.containers(all=True) == []


def test_line_verbs_need_a_project(jupybox_root):
    from IPython.testing.globalipapp import get_ipython

    from jupybox.jupyter.compose_magic import ComposeMagics

    magics = ComposeMagics(shell=get_ipython())
    with pytest.raises(IPythonUsageError, match="no project yet"):
        magics.compose("ps")


SCRIPT = textwrap.dedent("""\
    import json, subprocess, time
    from IPython.testing.globalipapp import start_ipython
    from IPython.utils.capture import capture_output
    ip = start_ipython()
    ip.display_formatter.active_types = list(ip.display_formatter.format_types)
    ip.run_line_magic("load_ext", "jupybox")
    cell = '''
    services:
      web:
        image: busybox:latest
        command: sh -c 'mkdir -p /w && echo served > /w/index.html && exec httpd -f -p 8080 -h /w'
        ports: ["8080"]
      worker:
        image: busybox:latest
        command: sleep 3600
    '''
    with capture_output() as cap:
        ip.run_cell_magic("compose", "-p addr -o urls", cell)
    urls = ip.user_ns["urls"]
    deadline = time.monotonic() + 30  # up returns once httpd is exec'ed, maybe before it listens
    while True:
        page = subprocess.run(["busybox", "wget", "-q", "-O-", "http://" + urls["web"] + "/"],
                              capture_output=True, text=True).stdout
        if page or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    final = [o.data["text/html"] for o in cap.outputs if "text/html" in o.data][-1]
    with capture_output():
        ip.run_line_magic("compose", "down")
    print(json.dumps({"urls": urls, "page": page, "final": final}))
""")


def test_output_variable_maps_services_to_published_addresses(compose):
    """-o in a network namespace of the test's own (the project needs a bridge)."""
    proc = subprocess.run(compose.prefix() + [sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "JUPYBOX_ROOT": compose.root})
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    host, _, port = got["urls"]["web"].partition(":")
    assert host == "127.0.0.1" and port.isdigit()
    assert got["urls"]["worker"].count(".") == 3  # no published port: its address on the network
    assert got["page"] == "served\n"
    assert f"0.0.0.0:{port}-&gt;8080/tcp" in got["final"]
    assert compose.containers() == []
