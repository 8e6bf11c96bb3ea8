"""Errors of the compose layer: one line naming the file, the line and the key; exit 1, as docker compose."""

from __future__ import annotations

from ..errors import JupyboxError, UsageError


class ComposeError(UsageError):
    """A compose model that cannot be used: ``compose.yaml:7: services.web.ports[0]: ...``.

    ``docker compose`` exits 1 for every project error (a bad file, a cycle, a missing variable,
    a port clash), so does this; the CLI's own usage errors keep 125."""

    exit_code = 1

    def __init__(self, message: str, file: str | None = None, line: int | None = None, key: str | None = None):
        self.message = " ".join(str(message).split("\n")).strip()
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class RuntimeComposeError(JupyboxError):
    """Something failed while the project was being brought up or down (exit 1)."""

    exit_code = 1
