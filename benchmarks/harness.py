"""Timing harness: cases of one benchmark run INTERLEAVED (A,B,C, B,C,A, C,A,B, ...) so that
machine noise hits all of them alike; medians, p90 and ratios to a reference case.

A :class:`Case` is one way of doing the thing being measured. Its ``run()`` does one
iteration and may return its own measured seconds (a worker process that timed
itself); otherwise the harness times the call with ``perf_counter``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

IDLE_PAUSE = 0.25  # seconds slept (untimed) before each iteration in "idle" variants


@dataclass
class Case:
    name: str
    run: Callable[[], float | None]
    note: str = ""
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None


@dataclass
class Result:
    name: str
    times: list[float] = field(default_factory=list)  # seconds
    note: str = ""
    error: str | None = None
    failures: int = 0

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def p90(self) -> float:
        return percentile(self.times, 90)

    @property
    def min(self) -> float:
        return min(self.times) if self.times else math.nan

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times) if self.times else math.nan

    def to_dict(self, reference: "Result | None" = None) -> dict:
        d = {
            "n": self.n,
            "median_ms": _ms(self.median),
            "p90_ms": _ms(self.p90),
            "min_ms": _ms(self.min),
            "mean_ms": _ms(self.mean),
        }
        if reference is not None and reference.times and self.times:
            d["ratio"] = round(self.median / reference.median, 3)
        if self.note:
            d["note"] = self.note
        if self.error:
            d["error"] = self.error
        if self.failures:
            d["failures"] = self.failures
        return d


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 3)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def timed_call(fn: Callable[[], float | None]) -> float:
    t0 = time.perf_counter()
    own = fn()
    elapsed = time.perf_counter() - t0
    return own if isinstance(own, (int, float)) else elapsed


def run_interleaved(
    cases: list[Case],
    runs: int,
    *,
    warmup: int = 2,
    idle: float = 0.0,
    progress: bool = True,
    max_failures: int = 3,
    rotate: bool = True,
) -> dict[str, Result]:
    """Run every case ``runs`` times, interleaved: A,B,C, then B,C,A, then C,A,B, ...

    With ``rotate`` each round starts one case later, so every case takes every position
    equally often (a heavy case's after-effects, e.g. podman's cgroup teardown, do not always
    land on the same neighbour); ``rotate=False`` keeps the plain A,B,C,A,B,C order.

    A failed iteration is counted and not timed; a case failing ``max_failures`` times
    (or at its first iteration) is dropped, the others go on.
    """
    results = {c.name: Result(c.name, note=c.note) for c in cases}
    active: list[Case] = []
    for c in cases:
        try:
            if c.setup:
                c.setup()
            active.append(c)
        except Exception as e:  # noqa: BLE001 - reported per case
            results[c.name].error = f"setup: {_short(e)}"
    try:
        for i in range(warmup + runs):
            order = list(active)
            if rotate and order:
                k = i % len(order)
                order = order[k:] + order[:k]
            for c in order:
                if idle:
                    time.sleep(idle)
                try:
                    t = timed_call(c.run)
                except Exception as e:  # noqa: BLE001
                    r = results[c.name]
                    r.error = _short(e)
                    r.failures += 1
                    if os.environ.get("JUPYBOX_BENCH_DEBUG"):
                        traceback.print_exc()
                    # a time-out leaves a worker in an unknown state: drop the case at once
                    if i == 0 or r.failures >= max_failures or isinstance(e, TimeoutError):
                        active.remove(c)
                    continue
                if i >= warmup:
                    results[c.name].times.append(t)
            if progress and sys.stderr.isatty():
                print(f"\r  {i + 1}/{warmup + runs}", end="", file=sys.stderr, flush=True)
        if progress and sys.stderr.isatty():
            print("\r" + " " * 20 + "\r", end="", file=sys.stderr, flush=True)
    finally:
        for c in cases:
            if c.teardown:
                try:
                    c.teardown()
                except Exception as e:  # noqa: BLE001
                    print(f"  teardown of {c.name} failed: {_short(e)}", file=sys.stderr)
    return results


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text if len(text) < 400 else text[:400] + "..."


def format_table(results: dict[str, Result], reference: str | None) -> str:
    ref = results.get(reference) if reference else None
    if ref is not None and not ref.times:
        ref = None
    rows = [("case", "median ms", "p90 ms", "min ms", "n", f"x {reference}" if ref else "")]
    for r in results.values():
        if r.error and not r.times:
            rows.append((r.name, "-", "-", "-", "0", f"FAILED {r.error}"))
            continue
        ratio = f"{r.median / ref.median:.2f}x" if ref else ""
        extra = f"  ({r.note})" if r.note else ""
        if r.failures:
            extra += f"  [{r.failures} failed: {r.error}]"
        rows.append((r.name, f"{r.median * 1e3:.2f}", f"{r.p90 * 1e3:.2f}", f"{r.min * 1e3:.2f}", str(r.n), ratio + extra))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 5)] + [row[5]]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def run_command(argv: list[str], env: dict | None = None, cwd: str | None = None, timeout: float = 120) -> None:
    """One external command, output discarded; raises with its stderr when it fails."""
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env, cwd=cwd, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[-500:]}")


class Worker:
    """A long-lived helper process speaking JSON lines (benchmarks/worker.py).

    Used for what cannot run in this process: crun inside a private mount namespace,
    and launches from a parent that holds a lot of memory.
    """

    def __init__(self, argv: list[str], env: dict | None = None, startup_timeout: float = 120):
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1, env=env,
        )
        try:
            hello = self._read(startup_timeout)
            if not hello.get("ready"):
                raise RuntimeError(f"worker did not start: {hello}")
        except BaseException:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        self.info = hello

    def _read(self, timeout: float) -> dict:
        assert self.proc.stdout is not None
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"worker {' '.join(self.argv[-3:])!r} did not answer in {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait(timeout=5)
            raise RuntimeError(f"worker exited ({rc})")
        return json.loads(line)

    def call(self, timeout: float = 30, **msg) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        reply = self._read(timeout)
        if reply.get("error"):
            raise RuntimeError(reply["error"])
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait(timeout=5)


def write_results(path: Path, entries: dict, meta: dict) -> None:
    """Merge ``entries`` (benchmark name -> data) into the JSON file at ``path`` (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data.setdefault("benchmarks", {}).update(entries)
    data["meta"] = meta
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
