#!/usr/bin/env python3
"""What the live chart of a ``%%container`` cell costs: CPU seconds per wall second (the budget: 2%).

Two measurements, both against a real container (``host`` image, ``sleep``):

1. in-process: the Recorder thread sampling ``Container.stats()`` and drawing each frame of the
   LiveChart (blit + JPEG) at RATE Hz for DURATION seconds; CPU time of this process while the
   main thread sleeps (the store's service is another process and is not counted).
2. in a real kernel (default; ``--no-kernel`` skips it): ``%%container sh -c 'sleep D'`` cells in
   an ipykernel started with jupyter_client, with the live widget forced on (``live_chart =
   'always'``: the frames really go through the comm and ZMQ) and with ``--no-chart``, for
   D = DURATION/3 and DURATION. The kernel process's extra CPU time grows linearly with D: the
   slope is the steady cost at RATE Hz (compared with the budget), the intercept what a cell pays
   once (making the figure, the first full draw, the final PNG and the summary).

    python benchmarks/bench_chart.py [--rate 4] [--duration 20] [--no-kernel]

Needs root (containers). Uses $JUPYBOX_ROOT, or a temporary root that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_self() -> float:
    t = os.times()
    return t.user + t.system


def in_process(rate: float, duration: float, root) -> dict:
    import jupybox
    from jupybox.jupyter.chart import ChartLimits, LiveChart, Recorder

    c = jupybox.run("host", ["sleep", str(duration + 5)], root=root, memory="256m", cpus=0.5, remove=True)
    try:
        live = LiveChart("bench", ChartLimits(memory=256 << 20, cpus=0.5))
        live.render(Recorder(c).series)  # the first full draw (fonts, caches) is not the steady state
        rec = Recorder(c, rate=rate, on_sample=live.draw)
        c0, t0 = cpu_self(), time.monotonic()
        rec.start()
        time.sleep(duration)
        rec.stop()
        c1, t1 = cpu_self(), time.monotonic()
    finally:
        c.kill()
        c.wait()
    wall = t1 - t0
    return {"what": "in-process: sampling + blit + JPEG", "rate_hz": rate, "wall_s": round(wall, 2),
            "samples": len(rec.series), "frames": live.frames, "full_draws": live.full_draws,
            "cpu_s": round(c1 - c0, 4), "cpu_fraction": round((c1 - c0) / wall, 5),
            "ms_per_frame": round((c1 - c0) / max(1, live.frames) * 1e3, 3)}


def in_kernel(rate: float, duration: float, root) -> dict:
    import psutil
    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ, JUPYBOX_ROOT=str(root))
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        proc = psutil.Process(km.provisioner.process.pid)

        def run(code: str) -> None:
            reply = kc.execute_interactive(code, timeout=duration + 120, output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"cell failed: {reply['content'].get('evalue')}")

        def cost(flags: str, seconds: float) -> float:
            t = proc.cpu_times()
            c0 = t.user + t.system
            run(f"%%container {flags} sh -c 'sleep {seconds}'\n# the cell is sh's stdin, unused here\n")
            t = proc.cpu_times()
            return t.user + t.system - c0

        run(f"%load_ext jupybox\n%config JupyboxMagics.live_chart = 'always'\n"
            f"%config JupyboxMagics.chart_rate = {rate}")
        cost("", 1)  # warm: imports, fonts, the store's service
        short, long_ = duration / 3, duration
        runs = {f"{label}_{d:g}s": round(cost(flags, d), 4)
                for d in (short, long_) for label, flags in (("no_chart", "--no-chart"), ("chart", ""))}
        extra_short = runs[f"chart_{short:g}s"] - runs[f"no_chart_{short:g}s"]
        extra_long = runs[f"chart_{long_:g}s"] - runs[f"no_chart_{long_:g}s"]
        # the slope is the cost of running at RATE Hz; the intercept is paid once per cell
        # (making the figure, the first full draw, the final PNG)
        steady = (extra_long - extra_short) / (long_ - short)
        fixed = extra_long - steady * long_
        return {"what": "kernel process: live widget over ZMQ minus --no-chart", "rate_hz": rate, **runs,
                "once_per_cell_s": round(fixed, 4), "total_fraction_long_run": round(extra_long / long_, 5),
                "cpu_fraction": round(steady, 5)}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--duration", type=float, default=30.0,
                   help="seconds of the long run (the kernel measurement also runs DURATION/3)")
    p.add_argument("--no-kernel", action="store_true", help="skip the in-kernel measurement")
    p.add_argument("--budget", type=float, default=0.02, help="fraction of one core allowed (default 0.02)")
    args = p.parse_args(argv)
    tmp = None
    root = os.environ.get("JUPYBOX_ROOT")
    if not root:
        tmp = root = tempfile.mkdtemp(prefix="jupybox-bench-chart-")
        os.environ["JUPYBOX_ROOT"] = root
    try:
        results = [in_process(args.rate, args.duration, root)]
        if not args.no_kernel:
            results.append(in_kernel(args.rate, args.duration, root))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    worst = 0.0
    for r in results:
        print(json.dumps(r))
        worst = max(worst, r["cpu_fraction"])
    print(f"chart CPU: {worst * 100:.2f}% of one core at {args.rate:g} Hz (budget {args.budget * 100:g}%)")
    return 0 if worst <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
