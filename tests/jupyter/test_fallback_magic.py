"""``%%container`` where no container can run: the cell runs as a plain process, under a notice.

Each test runs a real IPython shell in a subprocess confined by ``jupybox.testing.nonamespaces``
(a seccomp filter that refuses every namespace, even to root, as on mybinder.org), so the magic's
own detection finds the fallback mode. The subprocess reports what it saw as JSON on its last line.
Streaming and interrupts are checked by handshakes, never by timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("IPython")

pytestmark = [pytest.mark.root]

PRELUDE = r'''
import json, os, sys, threading, time, _thread
from IPython.testing.globalipapp import get_ipython
from IPython.utils.capture import capture_output
from jupybox.jupyter import cellrunner

ip = get_ipython()
ip.run_line_magic("load_ext", "jupybox")
ip.display_formatter.active_types = list(ip.display_formatter.formatters)  # every format, as in a notebook
magics = ip._jupybox_magics
magics.chart = False
magics.summary = False
out = {}

sessions = []  # a spy on the chart sessions the cells make (to look at their recorders)
_init = cellrunner.ChartSession.__init__
def _spy(self, *a, **k):
    _init(self, *a, **k)
    sessions.append(self)
cellrunner.ChartSession.__init__ = _spy


class Stream:
    """sys.stdout/sys.stderr stand-in: records writes, can act when a text arrives."""
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


def notices(cap):
    return [o.data for o in cap.outputs if "NO ISOLATION" in o.data.get("text/plain", "")]


def error_of(fn, *a):
    try:
        fn(*a)
    except BaseException as e:
        shown = getattr(e, "_render_traceback_", None)  # a cell's own traceback (ContainerError)
        return [type(e).__name__, str(e)] + (["\n".join(shown())] if type(e).__name__ == "ContainerError" else [])
    return None
'''


def in_fallback(tmp_path, body: str, env: dict | None = None) -> dict:
    """Run ``body`` (after PRELUDE) in an IPython shell under the no-namespace filter; its ``out`` dict."""
    script = tmp_path / "cell_test.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\nprint('\\nRESULT ' + json.dumps(out))\n")
    argv = [sys.executable, "-m", "jupybox.testing.nonamespaces", "--", sys.executable, str(script)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                       env={**os.environ, **(env or {})})
    results = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
    assert r.returncode == 0 and results, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return json.loads(results[-1][len("RESULT "):])


def test_a_python_cell_streams_moves_values_and_shows_the_notice(tmp_path, jupybox_root):
    """The cell prints 'ready' and waits for a file that is made only once 'ready' has reached the
    cell's stdout (and the chart has sampled the running process): live output, or a timeout."""
    got = in_fallback(tmp_path, f'''
        go = {str(tmp_path / "go")!r}
        magics.chart = True
        magics.summary = True

        def on_text(text):
            if "ready\\n" in text and not os.path.exists(go):
                deadline = time.monotonic() + 120
                while not (sessions and len(sessions[-1].recorder.series) >= 2) and time.monotonic() < deadline:
                    time.sleep(0.01)
                open(go, "w").close()

        ip.user_ns["data"] = list(range(10))
        stream = Stream(on_text)
        real = sys.stdout
        with capture_output(stdout=False) as cap:
            sys.stdout = stream
            try:
                ip.run_cell_magic("container", "-m 512m --chart -i data -o result,pid,ns", (
                    "import os, time\\n"
                    "ballast = bytearray(32 << 20)\\n"
                    "for i in range(0, len(ballast), 4096): ballast[i] = 1\\n"
                    "result = sum(data) * 2\\n"
                    "pid = os.getpid()\\n"
                    "ns = os.readlink('/proc/self/ns/pid')\\n"
                    "print('ready')\\n"
                    "deadline = time.monotonic() + 120\\n"
                    f"while not os.path.exists({{go!r}}):\\n"
                    "    if time.monotonic() > deadline:\\n"
                    "        print('timeout'); raise SystemExit(3)\\n"
                    "    time.sleep(0.01)\\n"
                    "print('done')\\n"))
            finally:
                sys.stdout = real
        out["stdout"] = stream.text
        out["result"] = ip.user_ns.get("result")
        out["pid"] = ip.user_ns.get("pid")
        out["ns"] = ip.user_ns.get("ns")
        out["our_ns"] = os.readlink("/proc/self/ns/pid")
        out["notices"] = notices(cap)
        out["kinds"] = [sorted(o.data) for o in cap.outputs]
        out["texts"] = [o.data.get("text/plain", "") for o in cap.outputs]
        series = magics.last.series
        out["samples"] = len(series)
        out["mem_peak"] = series.mem_peak
        out["tmp"] = magics.last.tmp
    ''')
    assert got["stdout"] == "ready\ndone\n"
    assert got["result"] == 90
    assert got["pid"] > 1 and got["ns"] == got["our_ns"]  # really a plain process of the host
    # the notice: HTML banner and a text line saying why, before anything else of the cell
    assert len(got["notices"]) == 1
    notice = got["notices"][0]
    assert notice["text/plain"].startswith("NO ISOLATION: no namespace can be created here (")
    assert "as a plain process on the host, not in a container" in notice["text/plain"]
    assert "-m 512MiB per process (RLIMIT_DATA)" in notice["text/plain"]
    assert "NO ISOLATION" in notice["text/html"] and "#cf222e" in notice["text/html"]
    assert got["texts"][0] == notice["text/plain"]
    # the chart sampled the process, and the summary says it was not a container
    assert got["samples"] >= 2 and got["mem_peak"] >= 32 << 20
    assert any("image/png" in kinds for kinds in got["kinds"])
    summary = [t for t in got["texts"] if "exited 0" in t]
    assert len(summary) == 1 and "(no isolation)" in summary[0] and "/ 512MiB (" in summary[0]
    assert got["tmp"] is None  # the cell's files are gone


def test_every_such_cell_gets_the_notice_and_command_cells_work(tmp_path, jupybox_root):
    got = in_fallback(tmp_path, '''
        ip.user_ns["who"] = "world"
        stream = Stream()
        real = sys.stdout
        with capture_output(stdout=False) as cap:
            sys.stdout = stream
            try:
                ip.run_cell_magic("container", "-i who sh", "echo hello $who from $(readlink /proc/self/ns/mnt)\\n")
                ip.run_cell_magic("container", "--cpus 0.5", "print('second')\\n")
            finally:
                sys.stdout = real
        out["stdout"] = stream.text
        out["notices"] = [n["text/plain"] for n in notices(cap)]
        out["mnt"] = os.readlink("/proc/self/ns/mnt")
    ''')
    assert got["stdout"] == f"hello world from {got['mnt']}\nsecond\n"
    assert len(got["notices"]) == 2
    assert "not enforced: --cpus 0.5 (no cgroup)" in got["notices"][1]


def test_failures_raise_and_no_raise_error_turns_it_off(tmp_path, jupybox_root):
    got = in_fallback(tmp_path, '''
        err = Stream()
        real = sys.stderr
        sys.stderr = err
        try:
            out["exit3"] = error_of(ip.run_cell_magic, "container", "", "raise SystemExit(3)\\n")
            out["quiet"] = error_of(ip.run_cell_magic, "container", "--no-raise-error", "raise SystemExit(3)\\n")
            out["quiet_code"] = magics.last.result["exit_code"]
            out["memory"] = error_of(ip.run_cell_magic, "container", "-m 64m", "b = bytearray(256 << 20)\\n")
        finally:
            sys.stderr = real
        out["stderr"] = err.text
    ''')
    assert got["exit3"][0] == "ContainerError" and got["exit3"][1].endswith("exited with code 3")
    assert got["quiet"] is None and got["quiet_code"] == 3
    # the memory limit holds: the allocation fails inside the cell, whose traceback is the error shown
    assert got["memory"][0] == "ContainerError" and "MemoryError" in got["memory"][2]


def test_what_needs_a_container_is_refused_in_one_line(tmp_path, jupybox_root):
    got = in_fallback(tmp_path, '''
        for key, line in (("volume", "-v /tmp:/data"), ("image", "alpine:3.19"), ("bg", "--bg"),
                          ("user", "--user nobody"), ("network", "--network bridge")):
            with capture_output() as cap:
                out[key] = error_of(ip.run_cell_magic, "container", line, "print('ran')\\n")
            out[key + "_ran"] = "ran" in cap.stdout
        out["run_d"] = error_of(ip.run_line_magic, "container", "run -d host sleep 600")
        out["containers"] = os.listdir(os.path.join(os.environ["JUPYBOX_ROOT"], "containers"))
    ''')
    assert got["volume"] == ["UsageError", "-v needs a mount namespace: without isolation it cannot be honoured; "
                                           "the process sees the host's own files"]
    assert got["image"] == ["UsageError", "image alpine:3.19 needs isolation (a root filesystem of its own): on "
                                          "the host only the host image can run, without isolation"]
    assert got["bg"][0] == "UsageError" and got["bg"][1].startswith("--bg needs isolation")
    assert got["user"][0] == "UsageError" and got["user"][1].startswith("--user nobody needs a container")
    assert got["network"][0] == "UsageError" and got["network"][1].startswith("--network bridge needs")
    assert not any(got[k + "_ran"] for k in ("volume", "image", "bg", "user", "network"))
    assert got["run_d"][0] == "UsageError" and "-d needs isolation" in got["run_d"][1]
    assert got["containers"] == []


def test_interrupt_stops_the_whole_tree(tmp_path, jupybox_root):
    """KeyboardInterrupt in the main thread (the kernel's SIGINT) once the cell runs: SIGINT to its
    process group, and what ignores it is gone too when the cell raises KeyboardInterrupt."""
    got = in_fallback(tmp_path, '''
        magics.interrupt_grace = 30  # the SIGINT must be enough for the cell's Python
        pids = {}

        def on_text(text):
            if "started " in text and "\\n" in text.split("started ", 1)[1] and not pids:
                pids.update(json.loads(text.split("started ", 1)[1].splitlines()[0]))
                _thread.interrupt_main()

        stream = Stream(on_text)
        real = sys.stdout
        sys.stdout = stream
        try:
            out["error"] = error_of(ip.run_cell_magic, "container", "", (
                "import json, os, signal, subprocess, time\\n"
                # a child that ignores SIGINT (said once it does): only the end of the cell kills it
                "child = subprocess.Popen(['sh', '-c', 'trap \\"\\" INT; echo trapped; exec sleep 600'],\\n"
                "                         stdout=subprocess.PIPE)\\n"
                "assert child.stdout.readline() == b'trapped\\\\n'\\n"
                "try:\\n"
                "    print('started', json.dumps({'cell': os.getpid(), 'child': child.pid}), flush=True)\\n"
                "    time.sleep(600)\\n"
                "except KeyboardInterrupt:\\n"
                "    print('got SIGINT', flush=True)\\n"
                "    raise\\n"))
        finally:
            sys.stdout = real
        import psutil
        def dead(pid):
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True
        out["stdout"] = stream.text
        out["exit_code"] = magics.last.result["exit_code"]
        out["cell_dead"] = dead(pids["cell"])
        deadline = time.monotonic() + 60
        while not dead(pids["child"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        out["child_dead"] = dead(pids["child"])
        out["tmp"] = magics.last.tmp
    ''')
    assert got["error"] is not None and got["error"][0] == "KeyboardInterrupt"
    assert "got SIGINT" in got["stdout"]
    assert got["exit_code"] in (130, 1)  # Python's death by SIGINT, not SIGKILL's 137
    assert got["cell_dead"] and got["child_dead"]
    assert got["tmp"] is None


def test_help_says_what_happens_without_isolation(tmp_path, jupybox_root):
    got = in_fallback(tmp_path, '''
        with capture_output() as cap:
            ip.run_cell_magic("container", "--help", "pass\\n")
        out["help"] = cap.stdout
    ''')
    assert "NO ISOLATION notice" in got["help"]
