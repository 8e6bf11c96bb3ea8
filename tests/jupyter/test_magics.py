"""``%%container`` and ``%container`` in a real IPython shell (run_cell_magic / run_line_magic / run_cell).

Real containers on the built-in ``host`` image (root needed). Live streaming and interrupts are
checked by handshakes through a bind-mounted directory, never by timing.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import _thread

import pytest

pytestmark = [pytest.mark.root]

IPython = pytest.importorskip("IPython")

from IPython.core.error import UsageError as IPythonUsageError  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402

import jupybox  # noqa: E402
from jupybox import errors  # noqa: E402


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture
def ip(module_root):
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "jupybox")
    magics = shell._jupybox_magics
    saved = {k: getattr(magics, k) for k in ("default_image", "default_memory", "chart", "summary", "interrupt_grace")}
    magics.chart = False  # the chart and the summary have their own tests; these check the cell's output
    magics.summary = False
    yield shell
    for k, v in saved.items():
        setattr(magics, k, v)
    left = _containers_after_cleanup()
    assert left == [], f"containers left behind: {left}"


def _containers_after_cleanup(grace: float = 10.0) -> list[str]:
    """Containers still there once the store's service's --rm cleanup (done just after it reports
    an exit) had ``grace`` seconds to finish; the leftovers are removed and returned."""
    import time

    deadline = time.monotonic() + grace
    while True:
        left = []
        for c in jupybox.containers(all=True):
            try:
                left.append(f"{c.name} ({c.status}, --rm={c.config['spec'].get('remove')})")
            except errors.ContainerNotFound:
                continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for c in jupybox.containers(all=True):
        try:
            c.remove(force=True)
        except errors.ContainerNotFound:
            pass
    return left


@pytest.fixture
def sync_dir(tmp_path):
    d = tmp_path / "sync"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


class Recorder:
    """A text stream (for sys.stdout/sys.stderr) that records writes and can act on a line."""

    def __init__(self, on_text=None):
        self.parts: list[str] = []
        self.on_text = on_text
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            self.parts.append(text)
            if self.on_text is not None:
                self.on_text(self.text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(self.parts)


# -- streaming -----------------------------------------------------------------------------------------
def test_output_streams_into_the_cell_while_the_container_runs(ip, sync_dir, monkeypatch):
    """The container prints 'ready' and then waits for a file that we create only when 'ready' has
    reached the cell's stdout: if output came only at the end, the container would time out."""
    go = sync_dir / "go"

    def on_text(text):
        if "ready\n" in text and not go.exists():
            go.write_text("go")

    out = Recorder(on_text)
    monkeypatch.setattr("sys.stdout", out)
    ip.run_cell_magic("container", f"-v {sync_dir}:/sync", (
        "import os, time\n"
        "print('ready')\n"
        "deadline = time.monotonic() + 120\n"
        "while not os.path.exists('/sync/go'):\n"
        "    if time.monotonic() > deadline:\n"
        "        print('timeout'); raise SystemExit(3)\n"
        "    time.sleep(0.01)\n"
        "print('done')\n"))
    assert out.text == "ready\ndone\n"


def test_stdout_and_stderr_each_keep_their_order(ip, monkeypatch):
    out, err = Recorder(), Recorder()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    ip.run_cell_magic("container", "", (
        "import sys\n"
        "for i in range(300):\n"
        "    print(f'out {i}')\n"
        "    if i % 3 == 0:\n"
        "        print(f'err {i}', file=sys.stderr)\n"))
    assert out.text.splitlines() == [f"out {i}" for i in range(300)]
    assert err.text.splitlines() == [f"err {i}" for i in range(0, 300, 3)]


def test_non_ascii_output_split_across_reads_is_decoded(ip, monkeypatch):
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    ip.run_cell_magic("container", "", "import sys\nsys.stdout.buffer.write('héllo wörld ✓\\n'.encode() * 5000)\n")
    assert out.text == "héllo wörld ✓\n" * 5000


# -- values in and out ---------------------------------------------------------------------------------
def test_input_output_round_trip(ip):
    ip.user_ns["numbers"] = list(range(10))
    ip.user_ns["config"] = {"scale": 3, "name": "x", "nested": (1, {2, 3})}
    ip.run_cell_magic("container", "-i numbers,config -o total,scaled -o seen", (
        "total = sum(numbers)\n"
        "scaled = [n * config['scale'] for n in numbers]\n"
        "seen = config\n"))
    assert ip.user_ns["total"] == 45
    assert ip.user_ns["scaled"] == [n * 3 for n in range(10)]
    assert ip.user_ns["seen"] == {"scale": 3, "name": "x", "nested": (1, {2, 3})}


def test_the_container_really_ran_the_cell(ip):
    """The values computed inside come from another pid namespace and hostname."""
    ip.run_cell_magic("container", "--hostname boxed -o pid,host", "import os, socket\npid = os.getpid()\nhost = socket.gethostname()\n")
    assert ip.user_ns["host"] == "boxed"
    assert ip.user_ns["pid"] != os.getpid() and ip.user_ns["pid"] < 10  # a fresh pid namespace


def test_unpicklable_input_is_named_and_nothing_runs(ip):
    ip.user_ns["lock"] = threading.Lock()
    ip.user_ns["fine"] = 1
    with pytest.raises(pickle.PicklingError) as info:
        ip.run_cell_magic("container", "-i fine,lock", "print('should not run')\n")
    assert isinstance(info.value, errors.JupyboxError)
    assert "-i lock" in str(info.value) and "pickle" in str(info.value)
    assert jupybox.containers(all=True) == []


def test_unpicklable_output_is_named(ip):
    with pytest.raises(errors.JupyboxError, match=r"-o gen: TypeError: cannot pickle 'generator'"):
        ip.run_cell_magic("container", "-o ok,gen", "ok = 1\ngen = (i for i in range(3))\n")


def test_missing_input_and_output_names(ip):
    with pytest.raises(errors.JupyboxError, match="-i nosuchvar: no variable"):
        ip.run_cell_magic("container", "-i nosuchvar", "pass\n")
    with pytest.raises(errors.JupyboxError, match="-o never: the cell did not define it"):
        ip.run_cell_magic("container", "-o never", "pass\n")
    with pytest.raises(IPythonUsageError, match="not a Python variable name"):
        ip.run_cell_magic("container", "-i 1abc", "pass\n")


# -- COMMAND cells ---------------------------------------------------------------------------------------
def test_command_cell_is_the_programs_script(ip, monkeypatch):
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    ip.user_ns["who"] = "world"
    ip.user_ns["n"] = 7
    ip.run_cell_magic("container", "-i who,n -e GREETING=hello sh", 'echo "$GREETING $who $((n * 6))"\necho second line\n')
    assert out.text == "hello world 42\nsecond line\n"


def test_image_may_be_left_out_before_a_command(ip, monkeypatch):
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    ip.run_cell_magic("container", "sh -c 'echo $0 ran'", "# the script is sh's stdin, unused with -c\n")
    ip.run_cell_magic("container", "host python3", "import sys\nprint(sys.prefix == %r)\n" % __import__("sys").prefix)
    assert out.text == "sh ran\nTrue\n"


def test_output_values_need_a_python_cell(ip):
    with pytest.raises(IPythonUsageError, match="-o needs a Python cell"):
        ip.run_cell_magic("container", "-o x sh", "x=1\n")


# -- failures ------------------------------------------------------------------------------------------
def test_nonzero_exit_raises_container_error(ip):
    with pytest.raises(errors.ContainerError) as info:
        ip.run_cell_magic("container", "", "import sys\nsys.exit(3)\n")
    assert not isinstance(info.value, errors.ContainerOOMError)
    assert info.value.exit_code == 3
    assert "exited with code 3" in str(info.value)
    # the cell's own traceback ends the run with 1
    with pytest.raises(errors.ContainerError) as info:
        ip.run_cell_magic("container", "", "raise ValueError('boom')\n")
    assert info.value.exit_code == 1


def test_no_raise_error_turns_it_off(ip):
    assert ip.run_cell_magic("container", "--no-raise-error", "import sys\nsys.exit(5)\n") is None
    assert ip._jupybox_magics.last.result["exit_code"] == 5


def test_oom_kill_raises_container_oom_error_with_limit_and_peak(ip):
    with pytest.raises(errors.ContainerOOMError) as info:
        ip.run_cell_magic("container", "-m 64m", "b = b'x' * (200 << 20)\nprint('survived')\n")
    e = info.value
    assert e.exit_code == 137
    assert e.limit == 64 << 20
    assert 32 << 20 <= e.peak <= 64 << 20
    assert "memory limit 64MiB" in str(e) and "peak" in str(e)


def _summary(cap) -> str:
    lines = [o.data["text/plain"] for o in cap.outputs if " · wall " in o.data.get("text/plain", "")]
    assert len(lines) == 1, [o.data for o in cap.outputs]
    return lines[0]


def _kernel_has_a_peak() -> bool:
    """v1's memory.max_usage_in_bytes always; v2's memory.peak since Linux 5.19 (the v2 guest's
    second boot runs 5.10)."""
    from jupybox.runtime.mode import kernel_at_least

    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers") or kernel_at_least(5, 19)


def test_the_limit_the_peak_and_the_oom_kill_reach_the_result_and_the_summary(ip):
    """What the cgroup driver reads of a run (its memory limit, its peak, an OOM kill) reaches the
    cell's result, its exception and its one-line summary. The v2 guest runs this one: these values
    come from memory.max, memory.peak and memory.events there (before 5.19, without memory.peak, an
    OOM kill's peak is its limit), from the v1 files here."""
    ip._jupybox_magics.summary = True
    with capture_output() as cap:  # 48 MiB touched under a 128 MiB limit
        ip.run_cell_magic("container", "-m 128m", "b = bytearray(48 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n")
    res = ip._jupybox_magics.last.result
    assert res["exit_code"] == 0 and not res["oom_killed"], res
    assert res["extra"]["memory_limit"] == 128 << 20
    summary = _summary(cap)
    if _kernel_has_a_peak():
        assert 48 << 20 <= res["extra"]["memory_peak"] <= 128 << 20, res
        assert "exited 0" in summary and "/ 128MiB (" in summary, summary
    else:  # the summary's peak, if any, is the chart's samples of memory.current
        assert res["extra"]["memory_peak"] is None, res
        assert "exited 0" in summary and ("/ 128MiB (" in summary or "peak" not in summary), summary

    with capture_output() as cap, pytest.raises(errors.ContainerOOMError) as info:
        ip.run_cell_magic("container", "-m 64m", "b = b'x' * (200 << 20)\nprint('survived')\n")
    e = info.value
    assert (e.exit_code, e.limit) == (137, 64 << 20) and 32 << 20 <= e.peak <= 64 << 20, (e.exit_code, e.limit, e.peak)
    res = ip._jupybox_magics.last.result
    assert res["oom_killed"] and res["exit_code"] == 137, res
    assert "survived" not in cap.stdout
    summary = _summary(cap)
    assert "OOM-killed (exit 137)" in summary and "/ 64MiB (" in summary, summary


def test_unknown_flag_is_a_usage_error_and_the_shell_lives(ip, monkeypatch):
    res = ip.run_cell("%%container --no-such-flag\nprint(1)\n")
    assert isinstance(res.error_in_exec, IPythonUsageError)
    assert "--no-such-flag" in str(res.error_in_exec)
    res = ip.run_cell("%container ps --bogus")
    assert isinstance(res.error_in_exec, IPythonUsageError)
    res = ip.run_cell("%container frobnicate")
    assert isinstance(res.error_in_exec, IPythonUsageError)
    res = ip.run_cell("%%container -m notasize\nprint(1)\n")
    assert isinstance(res.error_in_exec, IPythonUsageError) and "notasize" in str(res.error_in_exec)
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    res = ip.run_cell("%%container\nprint('still alive')\n")
    assert res.success and out.text == "still alive\n"


def test_unknown_image_is_one_line(ip):
    res = ip.run_cell("%%container no-such-image:1.0\nprint(1)\n")
    e = res.error_in_exec
    assert isinstance(e, errors.ImageNotFound)
    rendered = e._render_traceback_()
    assert len(rendered) == 1 and rendered[0].startswith("ImageNotFound: No such image: no-such-image:1.0")
    res = ip.run_cell("%%container nosuchimage\nprint(1)\n")  # no program of that name either
    assert isinstance(res.error_in_exec, errors.ImageNotFound)


# -- interrupt -------------------------------------------------------------------------------------------
def test_interrupt_stops_the_container_and_leaves_nothing(ip, sync_dir, monkeypatch):
    """KeyboardInterrupt in the main thread (what the kernel's SIGINT does) once the container is
    known to run: SIGINT to it, SIGKILL after the grace, removed, and the cell raises KeyboardInterrupt."""
    ip._jupybox_magics.interrupt_grace = 30  # the SIGINT alone must be enough here
    sent = []

    def on_text(text):
        if "started\n" in text and not sent:
            sent.append(1)
            _thread.interrupt_main()

    monkeypatch.setattr("sys.stdout", Recorder(on_text))
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("container", "", (
            "import time\n"
            "print('started')\n"
            "try:\n"
            "    time.sleep(600)\n"
            "except KeyboardInterrupt:\n"
            "    open('/dev/null', 'w').write('got SIGINT')\n"
            "    raise\n"))
    run = ip._jupybox_magics.last
    assert run.result["exit_code"] in (130, 1)  # Python's death by SIGINT, not SIGKILL's 137
    assert jupybox.containers(all=True) == []
    assert run.tmp is None  # the cell's files are gone


def test_interrupt_escalates_to_sigkill(ip, monkeypatch):
    ip._jupybox_magics.interrupt_grace = 0.5
    sent = []

    def on_text(text):
        if "armed\n" in text and not sent:
            sent.append(1)
            _thread.interrupt_main()

    monkeypatch.setattr("sys.stdout", Recorder(on_text))
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("container", "sh", "trap '' INT\necho armed\nwhile :; do sleep 1; done\n")
    assert ip._jupybox_magics.last.result["exit_code"] == 137
    assert jupybox.containers(all=True) == []


# -- background -----------------------------------------------------------------------------------------
def test_bg_returns_a_handle_and_prints_its_name(ip, monkeypatch):
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    c = ip.run_cell_magic("container", "--bg --name bgjob -m 64m sh", "echo from-bg\nsleep 600\n")
    try:
        assert isinstance(c, jupybox.Container)
        assert out.text == "bgjob\n"
        assert c.status == "running"
        assert c.limits.memory == 64 << 20
        names = [x.name for x in ip.run_line_magic("container", "ps")]
        assert "bgjob" in names
    finally:
        ip.run_line_magic("container", "rm -f bgjob")


def test_bg_python_cell_with_input(ip):
    ip.user_ns["payload"] = {"k": [1, 2, 3]}
    c = ip.run_cell_magic("container", "--bg -i payload", "print('payload', payload['k'])\n")
    assert c.wait(60) == 0
    assert c.logs() == "payload [1, 2, 3]\n"
    c.remove()
    with pytest.raises(IPythonUsageError, match="--bg"):
        ip.run_cell_magic("container", "--bg -o x", "x = 1\n")


# -- settings ---------------------------------------------------------------------------------------------
def test_config_defaults_apply(ip):
    ip.run_line_magic("config", "JupyboxMagics.default_memory = '96m'")
    ip.run_cell_magic("container", "", "pass\n")
    assert ip._jupybox_magics.last.result["extra"]["memory_limit"] == 96 << 20
    ip.run_cell_magic("container", "-m 80m", "pass\n")  # the flag wins
    assert ip._jupybox_magics.last.result["extra"]["memory_limit"] == 80 << 20
    ip.run_line_magic("config", "JupyboxMagics.default_image = 'no-such-default'")
    with pytest.raises(errors.ImageNotFound):
        ip.run_cell_magic("container", "", "pass\n")


def test_help_is_printed_not_raised(ip, monkeypatch):
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    assert ip.run_cell_magic("container", "--help", "pass\n") is None
    assert "-i VAR" in out.text and "--memory" in out.text and "--no-raise-error" in out.text


def test_summary_and_png_without_widgets(ip):
    """A terminal IPython (no kernel): the summary and the final PNG, no widget."""
    ip._jupybox_magics.chart = True
    ip._jupybox_magics.summary = True
    with capture_output() as cap:
        ip.run_cell_magic("container", "-m 128m --cpus 0.5 --chart", "x = sum(range(10**6))\n")
    kinds = [sorted(o.data) for o in cap.outputs]
    assert ["image/png", "text/plain"] in kinds
    summary = [o.data["text/plain"] for o in cap.outputs if "exited 0" in o.data["text/plain"]]
    assert len(summary) == 1 and "/ 128MiB (" in summary[0] and "wall" in summary[0] and "CPU" in summary[0]
    assert not any("application/vnd.jupyter.widget-view+json" in o.data for o in cap.outputs)
    png = [o.data["image/png"] for o in cap.outputs if "image/png" in o.data][0]
    import base64

    assert base64.b64decode(png).startswith(b"\x89PNG")


# -- %container VERB ---------------------------------------------------------------------------------------
def test_verbs_render_tables_and_return_objects(ip, monkeypatch):
    c = ip.run_line_magic("container", "run -d --name verbs -m 64m host sleep 600")
    try:
        assert isinstance(c, jupybox.Container) and c.name == "verbs"
        ps = ip.run_line_magic("container", "ps")
        assert [x.name for x in ps] == ["verbs"]
        assert "<table" in ps._repr_html_() and "verbs" in ps._repr_html_()
        assert "verbs" in repr(ps) and "CONTAINER ID" in repr(ps)
        images = ip.run_line_magic("container", "images")
        assert "host" in images._repr_html_() and any("host:latest" in i.refs for i in images)
        stats = ip.run_line_magic("container", "stats")
        assert [r["Name"] for r in stats] == ["verbs"] and stats[0]["memory_limit"] == 64 << 20
        assert "MEM USAGE / LIMIT" in stats._repr_html_()
        info = ip.run_line_magic("container", "inspect verbs")
        assert info[0]["Name"] == "/verbs" and info[0]["State"]["Running"] is True
        assert "<details" in info._repr_html_() and '"Running": true' in repr(info)
        vols = ip.run_line_magic("container", "volume ls")
        assert list(vols) == [] and "<table" in vols._repr_html_()

        out, err = Recorder(), Recorder()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        ip.run_line_magic("container", "exec verbs sh -c 'echo in-exec; echo to-err >&2'")
        assert out.text == "in-exec\n" and err.text == "to-err\n"
        with pytest.raises(errors.ContainerError):
            ip.run_line_magic("container", "exec verbs false")
        ip.run_line_magic("container", "inspect -f {{.State.Status}} verbs")
        assert out.text.endswith("running\n")
    finally:
        ip.run_line_magic("container", "rm -f verbs")
    assert ip.run_line_magic("container", "ps -a") == []


def test_attached_run_and_logs(ip, monkeypatch):
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    ip.run_line_magic("container", "run --name logged host sh -c 'echo one; echo two'")
    assert out.text == "one\ntwo\n"
    ip.run_line_magic("container", "logs logged")
    assert out.text == "one\ntwo\none\ntwo\n"
    ip.run_line_magic("container", "rm logged")
    with pytest.raises(errors.ContainerError):
        ip.run_line_magic("container", "run --rm host false")


def test_dockerfile_magic_parses_and_says_what_it_needs(ip):
    res = ip.run_cell("%%dockerfile\nFROM host\n")  # NAME is required
    assert isinstance(res.error_in_exec, IPythonUsageError)
    try:
        from jupybox.dockerfile import build  # noqa: F401
    except ImportError:
        res = ip.run_cell("%%dockerfile demo:1 --build-arg A=1\nFROM host\n")
        assert isinstance(res.error_in_exec, errors.JupyboxError)
        assert "jupybox.dockerfile.build()" in str(res.error_in_exec)


def test_push_and_pull_through_the_magic(ip, module_root, busybox_tar, registry, monkeypatch):
    """%container push / pull: the registry verbs with their progress display, the image returned."""
    from jupybox.testing import import_image

    import_image(module_root, busybox_tar, "bbmagic:1")
    ref = f"{registry.host}/bbmagic:1"
    ip.run_line_magic("container", f"tag bbmagic:1 {ref}")
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    digest = ip.run_line_magic("container", f"push -q --insecure-registry {registry.host} {ref}")
    assert digest.startswith("sha256:") and out.getvalue().endswith(f"{ref}: digest: {digest}\n")
    ip.run_line_magic("container", f"rmi {ref} bbmagic:1")
    img = ip.run_line_magic("container", f"pull -q --insecure-registry {registry.host} {ref}")
    assert img.manifest_digest == digest
    assert f"Status: Downloaded image for {ref} ({digest})" in out.getvalue()
