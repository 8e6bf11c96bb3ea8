"""The build's text display: one line per step with its cache state and time.

::

    [1/4] FROM busybox:latest  0.01s
    [2/4] RUN echo hello
      | hello
      => 0.06s
    [3/4] COPY app.py /app/  CACHED
    [4/4] CMD ["python3", "/app/app.py"]  CACHED

Multi-stage builds prefix the stage (``[builder 2/5]``). ``plain`` prints the RUN output live,
``tty`` shows it on one line rewritten in place (the step's lines stay, its output goes; a failing
step's output is printed whole), ``auto`` is ``tty`` on a terminal and ``plain`` elsewhere,
``quiet`` prints nothing until an error, and then the failing step's output.
"""

from __future__ import annotations

import sys
import threading

MAX_INSTRUCTION = 100


CLEAR_LINE = "\r\x1b[2K"


class Printer:
    def __init__(self, mode: str = "auto", out=None, err=None, multi_stage: bool = False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        if mode == "auto":
            isatty = getattr(self.out, "isatty", None)
            mode = "tty" if isatty is not None and isatty() else "plain"
        self.mode = mode
        self.multi = multi_stage
        self.pending = False
        self.inplace = False  # tty: an output line is shown, to be rewritten
        self.lock = threading.Lock()

    def _w(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _label(self, ev) -> str:
        inst = " ".join(ev.instruction.split("\n")[0].split())
        if len(inst) > MAX_INSTRUCTION:
            inst = inst[: MAX_INSTRUCTION - 3] + "..."
        where = f"{ev.stage} {ev.step}/{ev.total}" if self.multi else f"{ev.step}/{ev.total}"
        return f"[{where}] {inst}"

    def __call__(self, ev) -> None:
        with self.lock:
            quiet = self.mode == "quiet"
            if ev.kind == "start":
                if not quiet:
                    self._w(self._label(ev))
                    self.pending = True
            elif ev.kind == "output":
                if quiet:
                    return
                if self.pending:
                    self._w("\n")
                    self.pending = False
                if self.mode == "tty":
                    self._w(f"{CLEAR_LINE}  | {ev.line[:MAX_INSTRUCTION]}")
                    self.inplace = True
                else:
                    self._w(f"  | {ev.line}\n")
            elif ev.kind == "end":
                if quiet:
                    return
                status = "CACHED" if ev.cached else f"{ev.duration:.2f}s"
                if self.inplace:
                    self._w(CLEAR_LINE)
                    self.inplace = False
                if self.pending:
                    self._w(f"  {status}\n")
                    self.pending = False
                else:
                    self._w(f"  => {status}\n")
            elif ev.kind == "error":
                if self.inplace:
                    self._w(CLEAR_LINE)
                    self.inplace = False
                if self.pending:
                    self._w("\n")
                    self.pending = False
                if (quiet or self.mode == "tty") and ev.output:
                    self.err.write(self._label(ev) + "\n")
                    for line in ev.output:
                        self.err.write(f"  | {line}\n")
                    self.err.flush()
            elif ev.kind == "info":
                if quiet and not ev.message.startswith("[Warning]"):
                    return
                if self.inplace:
                    self._w("\n")
                    self.inplace = False
                if self.pending:
                    self._w("\n")
                    self.pending = False
                stream = self.err if ev.message.startswith("[Warning]") else self.out
                stream.write(ev.message + "\n")
                stream.flush()
