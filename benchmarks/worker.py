"""A benchmark helper process: reads JSON requests on stdin, answers JSON lines, times itself.

    python worker.py [--hold BYTES] [--api]

--hold BYTES  allocate and touch that much memory first (the fork-rss benchmark)
--api         import jupybox up front (so the import is not timed)

Requests:
    {"op": "exec", "argv": [...], "env": {...}|null}   -> {"t": seconds}
    {"op": "api", "image": I, "root": R, "command": [...], "options": {...}} -> {"t": seconds, "rc": code}
    {"op": "rss"} -> {"rss": bytes}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _empty_dir(path: str) -> None:
    import shutil

    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def main() -> int:
    args = sys.argv[1:]
    hold = 0
    api = False
    while args:
        a = args.pop(0)
        if a == "--hold":
            hold = int(args.pop(0))
        elif a == "--api":
            api = True
        else:
            print(f"unknown argument {a}", file=sys.stderr)
            return 2
    # The protocol gets the original stdout; anything else printing to fd 1 goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    ballast = None
    if hold:
        ballast = bytearray(hold)
        page = os.sysconf("SC_PAGE_SIZE")
        for off in range(0, hold, page * 256):  # touch every page, in slices (fast)
            end = min(off + page * 256, hold)
            ballast[off:end:page] = b"\x01" * len(range(off, end, page))
    jupybox = None
    if api:
        import jupybox  # noqa: F401  (the API under test)

    # set by the namespace wrapper of anchors.py: the tmpfs hiding the cgroup2 mount
    masked = os.environ.get("JBX_MASKED_DIR")
    proto.write(json.dumps({"ready": True, "pid": os.getpid(), "rss": rss_bytes()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            op = req.get("op")
            if op == "exec":
                env = req.get("env")
                t0 = time.perf_counter()
                proc = subprocess.run(
                    req["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    env=env, cwd=req.get("cwd"),
                )
                t = time.perf_counter() - t0
                if masked:
                    _empty_dir(masked)  # untimed
                if proc.returncode != 0:
                    err = proc.stderr.decode(errors="replace").strip()[-500:]
                    raise RuntimeError(f"{req['argv'][0]} exited {proc.returncode}: {err}")
                reply = {"t": t}
            elif op == "api":
                if jupybox is None:
                    import jupybox
                t0 = time.perf_counter()
                c = jupybox.run(req["image"], req["command"], root=req["root"], **req.get("options", {}))
                rc = c.wait()
                t = time.perf_counter() - t0
                if rc != 0:
                    raise RuntimeError(f"container exited {rc}")
                reply = {"t": t, "rc": rc}
            elif op == "rss":
                reply = {"rss": rss_bytes()}
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as e:  # noqa: BLE001 - reported to the parent
            reply = {"error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(reply) + "\n")
    del ballast
    return 0


if __name__ == "__main__":
    sys.exit(main())
