"""The kernel's end of a Python cell's channel: a FIFO in the cell's directory that the runner
inside the container (``inside/runner.py``) writes its messages to.

A message is one JSON line, followed by raw bytes when it says ``"bytes": N``:

    stage        {"stage": "loading", "name": "arr"} before each -i value; {"stage": "running"} after
    input-error  an -i value that cannot be unpickled inside (the message says why)
    display      a rich output (a matplotlib figure at plt.show()): shown at once, in the cell
    result       the cell's last expression, as IPython would display it
    error        the cell's exception (KeyboardInterrupt too): IPython's traceback, the user's frames
    outputs      the -o values: their sizes and errors, then their pickles as raw bytes

Everything here comes from the container: lines and payloads are bounded, a malformed message
ends the channel (the cell goes on), and rich outputs are cleaned by ``richoutput`` before they
reach the notebook. Nothing is unpickled here.
"""

from __future__ import annotations

import contextvars
import json
import os
import select
import threading

MAX_LINE = 80 << 20  # a message's JSON line (a figure's PNG is in it, base64)
MAX_DISPLAY = 64 << 20  # one rich output (a figure, a DataFrame's HTML)
MAX_TRACEBACK = 4 << 20
KINDS = {"stage", "input-error", "display", "result", "error", "outputs"}


class CellChannel:
    """Opens the FIFO before the container starts and reads it in a thread until ``finish()``."""

    def __init__(self, directory: str, on_display=None):
        self.path = os.path.join(directory, "channel")
        os.mkfifo(self.path, 0o622)
        os.chmod(self.path, 0o622)  # the runner may run as another user (--user)
        # O_NONBLOCK: opening the reading end returns at once, with no writer yet
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.on_display = on_display
        self.stage: dict | None = None
        self.loaded: list[str] = []
        self.result: dict | None = None
        self.error: dict | None = None
        self.input_error: dict | None = None
        self.outputs: tuple[dict, bytes] | None = None
        self.broken: str | None = None
        self._buf = bytearray()
        self._done = threading.Event()
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._loop,),
                                        name="jupybox-cell-channel", daemon=True)
        self._thread.start()

    # -- reading -----------------------------------------------------------------------------
    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        try:
            while True:
                finishing = self._done.is_set()
                if not finishing:
                    poller.poll(200)
                if not self._read_available() and finishing:
                    break
                if self.broken is None:
                    self._parse()
                if not finishing and not self._buf:
                    # a writer that closed leaves POLLHUP set: do not spin on it
                    self._done.wait(0.05)
        finally:
            os.close(self.fd)
            self.fd = -1

    def _read_available(self) -> bool:
        got = False
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return got
            except OSError:
                return got
            if not data:
                return got
            got = True
            if self.broken is None:
                self._buf += data

    def _parse(self) -> None:
        while self._buf:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    self._break("a message line is too long")
                return
            try:
                msg = json.loads(bytes(self._buf[:nl]))
            except ValueError:
                self._break("a message is not JSON")
                return
            if not isinstance(msg, dict) or msg.get("kind") not in KINDS:
                self._break("an unknown message")
                return
            size = msg.get("bytes", 0)
            if not isinstance(size, int) or size < 0:
                self._break("a bad size")
                return
            if len(self._buf) < nl + 1 + size:
                return  # the rest of its bytes are still coming
            data = bytes(self._buf[nl + 1:nl + 1 + size])
            del self._buf[:nl + 1 + size]
            self._dispatch(msg, data, nl)

    def _break(self, why: str) -> None:
        self.broken = why
        self._buf.clear()

    def _dispatch(self, msg: dict, data: bytes, length: int) -> None:
        kind = msg["kind"]
        if kind == "stage":
            if self.stage is not None and self.stage.get("stage") == "loading":
                self.loaded.append(str(self.stage.get("name")))
            self.stage = msg
        elif kind == "input-error":
            self.input_error = msg
        elif kind == "error":
            if length <= MAX_TRACEBACK and isinstance(msg.get("traceback"), list):
                self.error = msg
        elif kind == "outputs":
            self.outputs = (msg, data)
        elif kind in ("display", "result"):
            if length > MAX_DISPLAY:
                return
            if kind == "result":
                self.result = msg
            elif self.on_display is not None:
                try:
                    self.on_display(msg)
                except Exception:  # noqa: BLE001 - a display that fails is no reason to lose the cell
                    pass

    # -- the end -------------------------------------------------------------------------------
    def finish(self, timeout: float = 30.0) -> None:
        """After the container exited: read what is left, then close."""
        self._done.set()
        self._thread.join(timeout)

    def loading(self) -> str | None:
        """The -i value being loaded when the cell stopped, if it stopped there."""
        if self.stage is not None and self.stage.get("stage") == "loading":
            return str(self.stage.get("name"))
        return None
