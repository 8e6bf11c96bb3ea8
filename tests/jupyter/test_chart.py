"""The chart: samples from a real container's cgroup, live frames that follow the data, the final PNG."""

from __future__ import annotations

import io
import time

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("ipywidgets")

from PIL import Image  # noqa: E402

from jupybox.jupyter.chart import (  # noqa: E402
    MiB,
    ChartImage,
    ChartLimits,
    LiveChart,
    Recorder,
    Series,
    render_png,
    run_peak,
)
from jupybox.jupyter.display import JSONView, Summary, Table  # noqa: E402


def series(n: int, mem_mib: float = 100, cpu: float = 50, step: float = 0.25) -> Series:
    s = Series()
    for i in range(n):
        s.t.append(i * step)
        s.cpu.append(cpu)
        s.mem.append(int(mem_mib * MiB))
        s.pids.append(3)
    s.mem_peak = int(mem_mib * MiB)
    return s


def pixels(data: bytes):
    return Image.open(io.BytesIO(data)).convert("RGB")


def red_pixels(img) -> int:
    raw = img.tobytes()
    return sum(1 for i in range(0, len(raw), 3) if raw[i] > 180 and raw[i + 1] < 90 and raw[i + 2] < 90)


def test_final_png_marks_limits_and_the_oom_kill():
    limits = ChartLimits(memory=256 * MiB, cpus=0.5)
    plain = render_png(series(40), ChartLimits(), "run")
    with_limits = render_png(series(40), limits, "run")
    full = render_png(series(40, mem_mib=200), limits, "run")
    oom = render_png(series(40, mem_mib=200), limits, "run", oom=True)
    for data in (plain, with_limits, full, oom):
        assert data.startswith(b"\x89PNG")
        assert len(data) < 200_000  # small enough to keep in a notebook
    # the limit lines are red and dashed; the OOM kill adds a red cross and a red label
    assert red_pixels(pixels(plain)) == 0
    assert red_pixels(pixels(with_limits)) > 200
    assert red_pixels(pixels(oom)) > red_pixels(pixels(full)) + 50


def test_live_frames_follow_the_data_and_axes_grow_by_doubling():
    live = LiveChart("live", ChartLimits(memory=512 * MiB, cpus=1))
    a = live.render(series(8, mem_mib=100))
    b = live.render(series(8, mem_mib=300))
    assert a[:2] == b"\xff\xd8" and a != b  # JPEG frames that differ with the data
    assert live.full_draws == 1  # same axes: only the lines were redrawn
    live.render(series(400))  # 100 s: the time axis doubles until it fits
    assert live.xmax >= 100 and live.full_draws == 2
    live.render(series(400, cpu=700))  # 7 cores busy: the CPU axis doubles too
    assert live.tops[0] > 700 and live.full_draws == 3
    assert live.frames == 4
    live.close()


def test_status_text_and_summary():
    live = LiveChart("live", ChartLimits(memory=64 * MiB))
    s = series(4, mem_mib=32)
    assert live.status_text(s) == "● running 0.8 s · CPU 50% · memory 32MiB/64MiB · pids 3"
    s.oom_at = 0.5
    assert live.status_text(s).endswith("OOM kill!")
    live.close()
    summ = Summary("job", status="exited 0", ok=True, wall=2.0, cpu_seconds=1.0, memory_peak=32 * MiB,
                   memory_limit=64 * MiB, pids_peak=3, cpus=0.5)
    assert summ.text() == ("job: exited 0 · wall 2.0 s · CPU 1.00 s (50% of a core, quota 0.5) · "
                           "peak memory 32MiB / 64MiB (50%) · pids 3")
    assert "#1a7f37" in summ._repr_html_()
    bad = Summary("job", status="OOM-killed (exit 137)", ok=False, wall=1.0, cpu_seconds=None, memory_peak=None,
                  memory_limit=None)
    assert bad.text() == "job: OOM-killed (exit 137) · wall 1.0 s" and "#cf222e" in bad._repr_html_()


def test_chart_image_has_png_and_text():
    img = ChartImage(b"\x89PNGdata", "[chart]")
    bundle, _meta = img._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"} and bundle["text/plain"] == "[chart]"


def test_tables_and_json_view_escape_html():
    t = Table([{"a": "<b>x</b>", "b": None}], [("a", "A"), ("b", "B")])
    assert "&lt;b&gt;x&lt;/b&gt;" in t._repr_html_() and "<b>x</b>" not in t._repr_html_()
    assert repr(t).splitlines() == ["A          B", "<b>x</b>"]
    j = JSONView([{"k": "<v>", "n": [1, 2]}])
    assert "&quot;&lt;v&gt;&quot;" in j._repr_html_() and '"k": "<v>"' in repr(j)


@pytest.mark.root
def test_recorder_reads_the_containers_cgroup(jupybox_root, tmp_path):
    """A container allocates 48 MiB, starts a second process and waits for us: the recorder sees
    the memory, the pids and the CPU quota from the container's own cgroup."""
    import jupybox

    sync = tmp_path / "sync"
    sync.mkdir()
    code = ("import os, subprocess, time\n"
            "b = bytearray(48 << 20)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\n"
            "p = subprocess.Popen(['sleep', '300'])\n"
            "open('/sync/ready', 'w').close()\n"
            "deadline = time.monotonic() + 120\n"
            "while not os.path.exists('/sync/go') and time.monotonic() < deadline: time.sleep(0.01)\n"
            "p.kill()\n")
    c = jupybox.run("host", ["python3", "-c", code], memory="128m", cpus=0.5, pids_limit=50,
                    volumes=[f"{sync}:/sync"], remove=True)
    try:
        frames = []
        live = LiveChart("t", ChartLimits(memory=128 * MiB, cpus=0.5, pids=50))
        rec = Recorder(c, rate=20, on_sample=lambda s: frames.append(live.render(s))).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            s = rec.series
            # two samples at least: the container may be ready by the first one (starts are fast)
            if (sync / "ready").exists() and len(s.mem) >= 2 and max(s.mem) >= 48 * MiB and max(s.pids) >= 3:
                break
            time.sleep(0.01)
        (sync / "go").touch()
        assert c.wait(60) == 0
        assert rec.wait_stopped(30)
    finally:
        rec.stop()
        (sync / "go").touch()
        c.wait(60)
    s = rec.series
    assert max(s.mem) >= 48 * MiB and s.mem_peak >= 48 * MiB and max(s.mem) <= 128 * MiB
    assert max(s.pids) >= 3  # init, python, sleep
    assert rec.first.memory_limit == 128 * MiB and rec.first.cpu_quota == 0.5 and rec.first.pids_limit == 50
    assert s.t == sorted(s.t) and all(v >= 0 for v in s.cpu)
    assert s.oom_at is None and rec.error is None
    assert len(frames) == len(s) and len(set(frames)) > 1
    live.close()


def test_run_peak_is_the_kernels_else_the_samples_and_an_oom_kill_reached_the_limit():
    """cgroup v2 before Linux 5.19 has no memory.peak: the chart's samples stand in, and an OOM kill
    under memory.max means usage reached the limit (the v2 guest's 5.10 boot runs the real case)."""
    sampled = Series(mem_peak=10 * MiB)
    assert run_peak({"memory_peak": 50 * MiB}, sampled, False, 64 * MiB) == 50 * MiB
    assert run_peak({"memory_peak": 50 * MiB}, sampled, True, 64 * MiB) == 50 * MiB  # the kernel's wins
    assert run_peak({"memory_peak": None}, sampled, False, 64 * MiB) == 10 * MiB
    assert run_peak({}, Series(), False, 64 * MiB) is None  # nothing measured: no "peak 0B"
    assert run_peak({}, None, False, None) is None
    assert run_peak({"memory_peak": None}, sampled, True, 64 * MiB) == 64 * MiB
    assert run_peak({}, None, True, None) is None
