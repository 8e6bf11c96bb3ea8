"""What a build reports while it runs: one :class:`StepEvent` per step start, output line, end or
error (``on_step``; :mod:`.progress` prints them)."""

from __future__ import annotations


class StepEvent:
    """What ``on_step`` receives. ``kind``: ``start`` (a step begins), ``output`` (a line of a RUN),
    ``end`` (the step is done: ``cached``, ``duration``, ``image_id``), ``error`` (it failed:
    ``message``, the RUN's ``output`` lines and ``exit_code``), ``info`` (pulling, warnings, final
    messages). ``step``/``total`` number the steps of one stage (FROM is 1)."""

    __slots__ = ("kind", "stage", "step", "total", "instruction", "cached", "duration", "line", "image_id",
                 "message", "output", "exit_code")

    def __init__(self, kind: str, stage: str = "", step: int = 0, total: int = 0, instruction: str = "",
                 cached: bool = False, duration: float = 0.0, line: str = "", image_id: str | None = None,
                 message: str = "", output: list[str] | None = None, exit_code: int | None = None):
        self.kind = kind
        self.stage = stage
        self.step = step
        self.total = total
        self.instruction = instruction
        self.cached = cached
        self.duration = duration
        self.line = line
        self.image_id = image_id
        self.message = message
        self.output = output if output is not None else []
        self.exit_code = exit_code

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__ if getattr(self, k) not in ("", None, [], 0, False))
        return f"StepEvent({fields})"
