"""Do a notebook's committed outputs come from the current code? Compare them with a fresh run.

Two runs of the same notebook differ in what the machine and the moment choose: container ids and
names, temp directories, pids, times, sizes, addresses, port numbers, the pixels of a chart. Those
are normalized away *here*, in the comparison, never in the notebooks: what a notebook prints is
what a reader would see. What is left must be equal: the commands, the words and the shape of every
output, its kind (stream, display, result, error) and, for displays, its formats.

A cell tagged ``output-varies`` is compared by the kinds of its outputs only (its text depends on
the machine in a way no rule here can name, e.g. the kernel's own view of its hardware).
"""

from __future__ import annotations

import re

VARIES = "output-varies"

# order matters: whole tokens first (paths, ids, names), then times, then any remaining digits
_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\x1b\[[0-9;]*[A-Za-z]"), ""),                                    # terminal colours
    (re.compile(r"(/[\w.+-]+)*/jupybox-(nb\d+[a-z]?|notebooks)-[\w]+"), "$WORK"),  # a lesson's temp dir
    (re.compile(r"(/[\w.+-]+)*/nb/(store|tmp)\b"), "$SANDBOX"),                      # the runner's sandbox
    (re.compile(r"sha256:[0-9a-f]{6,64}"), "sha256:<digest>"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "0x<hex>"),
    (re.compile(r"\bkernel-[0-9a-f]{8}-[0-9a-f]{6}\b"), "kernel-<id>"),                        # kernels' containers
    (re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{12,64}(?![0-9A-Za-z])"), "<id>"),                   # ids
    (re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{8,11}(?![0-9A-Za-z])"), "<id>"),  # shorter ones
    (re.compile(r"\bjv[0-9a-f]{8}-[0-9a-f]{4}\b"), "jv<id>"),                                  # jupybox's veths
    # generated names; also "<id>": a container that is gone (run --rm) is shown by its short id
    # instead (jupyter/chartsession.py container_name), as the moment decides
    (re.compile(r"\b[a-z]+_[a-z]+_[0-9a-f]{4}\b"), "<id>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"(Less than a second|About a minute|About an hour|\d+ (second|minute|hour|day)s?) ago"),
     "<time> ago"),
    (re.compile(r"Up (Less than a second|About a minute|\d+ (second|minute|hour)s?)"), "Up <time>"),
    (re.compile(r" · pids \d+$", re.M), ""),    # a cell's summary names its pids only when a sample saw them
    (re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b"), "<d>"),
    (re.compile(r"\d+(\.\d+)?\s?(B|kB|KB|MB|GB|KiB|MiB|GiB|k|K|M|G)\b"), "<size>"),
    (re.compile(r"\d+"), "#"),
    (re.compile(r"[ \t]+"), " "),
]


def normalize(text: str) -> str:
    """``text`` with what may change between two runs replaced by placeholders."""
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    # (a right-aligned column of numbers moves the start of a line: its indentation is not compared)
    return "\n".join(line.strip() for line in text.splitlines()).strip("\n")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def summary(cell) -> dict:
    """What is compared of a code cell's outputs."""
    streams: dict[str, str] = {}
    others: list[tuple] = []
    varies = VARIES in cell.get("metadata", {}).get("tags", [])
    for out in cell.get("outputs", []):
        kind = out["output_type"]
        if kind == "stream":
            streams[out["name"]] = streams.get(out["name"], "") + _text(out.get("text"))
        elif kind == "error":
            others.append(("error", out.get("ename")))
        else:
            data = out.get("data", {})
            plain = "" if varies else normalize(_text(data.get("text/plain")))
            others.append((kind, tuple(sorted(data)), plain))
    if varies:
        return {"streams": sorted(streams), "others": others}
    return {"streams": {name: normalize(text) for name, text in streams.items()}, "others": others}


def differences(committed, executed, limit: int = 5) -> list[str]:
    """How the committed outputs differ from those of a fresh run, one message per cell (at most
    ``limit``); empty when they agree."""
    code = [(i, c) for i, c in enumerate(committed.cells) if c.cell_type == "code"]
    fresh = [c for c in executed.cells if c.cell_type == "code"]
    if len(code) != len(fresh):
        return [f"{len(code)} code cells committed, {len(fresh)} executed"]
    found = []
    for (i, old), new in zip(code, fresh):
        if old.source != new.source:
            found.append(f"cell {i}: the source differs")
            continue
        a, b = summary(old), summary(new)
        if a != b:
            found.append(f"cell {i} ({old.source.splitlines()[0][:60] if old.source else ''!r}):\n"
                         f"  committed: {_short(a)}\n  executed:  {_short(b)}")
        if len(found) >= limit:
            break
    return found


def _short(s: dict, width: int = 1200) -> str:
    text = repr(s)
    return text if len(text) <= width else text[:width] + "..."
