"""A pytest plugin for the guest's pytest: one JSON line per test, appended as soon as the test ends
(a guest that dies mid-run still reports what finished), to ``$JBX_V2GUEST_RESULTS``.

Also ``$JBX_V2GUEST_COLLECTED``: the uptime when collection ended and how many tests it found
(pytest's start and collection are a good part of a run under emulation).

Each line: nodeid, outcome (passed, failed, skipped, xfailed, xpassed, error), the failing phase's
report text, the captured output, the skip reason, and the test's duration in the guest.
"""

from __future__ import annotations

import json
import os

_reports: dict[str, list] = {}


def _record(nodeid: str, reports: list) -> dict:
    outcome, text, reason = "passed", "", ""
    duration = sum(r.duration for r in reports)
    for r in reports:
        if hasattr(r, "wasxfail"):
            outcome = "xpassed" if r.passed else "xfailed"
            reason = r.wasxfail
        elif r.failed:
            outcome = "failed" if r.when == "call" else "error"
            text = r.longreprtext
            break
        elif r.skipped:
            outcome = "skipped"
            reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
    sections = []
    for r in reports:
        for title, content in r.sections:
            if content.strip():
                sections.append(f"----- {title} ({r.when}) -----\n{content}")
    return {"nodeid": nodeid, "outcome": outcome, "text": text, "reason": reason,
            "output": "\n".join(sections), "duration": round(duration, 3)}


def pytest_runtest_logreport(report):
    _reports.setdefault(report.nodeid, []).append(report)


def pytest_runtest_logfinish(nodeid, location):
    path = os.environ.get("JBX_V2GUEST_RESULTS")
    reports = _reports.pop(nodeid, [])
    if path and reports:
        with open(path, "a") as f:
            f.write(json.dumps(_record(nodeid, reports)) + "\n")
            f.flush()
            os.fsync(f.fileno())


def pytest_collection_finish(session):
    path = os.environ.get("JBX_V2GUEST_COLLECTED")
    if path:
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        with open(path, "w") as f:
            json.dump({"uptime": uptime, "tests": len(session.items)}, f)
