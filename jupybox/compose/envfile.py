"""``.env``, ``--env-file`` and a service's ``env_file``: python-dotenv's parser, compose's interpolation.

The syntax (``KEY=VALUE``, ``export KEY=...``, quotes, ``# comments``, multi-line double-quoted
values) is read by python-dotenv's parser, the library docker-compose 1.x used. Values are then
interpolated as compose does (``interpolation.py``, every operator), except single-quoted ones,
which are literal; a variable is looked up first in ``lookup`` (the environment that has
precedence), then among the keys defined earlier in the same file. A bare ``KEY`` takes its value
from ``lookup`` (and is skipped when unset). A line that is not ``KEY=VALUE`` is a one-line error
with its line number.
"""

from __future__ import annotations

import io
import re

from .errors import ComposeError
from .interpolation import InvalidTemplate, MissingRequired, Substitution

MAX_BYTES = 1 << 20
_SINGLE_QUOTED = re.compile(r"\s*(?:export\s+)?[^=]*=\s*'")


def parse(text: str, lookup, file: str) -> dict[str, str]:
    from dotenv.parser import parse_stream

    values: dict[str, str] = {}

    def find(name: str):
        found = lookup(name)
        return found if found is not None else values.get(name)

    sub = Substitution(find)
    for b in parse_stream(io.StringIO(text)):
        if b.error:
            raise ComposeError(f"unexpected line {b.original.string.strip()!r}: KEY=VALUE expected", file,
                               b.original.line)
        if b.key is None:
            continue
        if b.value is None:
            found = lookup(b.key)
            if found is not None:
                values[b.key] = found
            continue
        if _SINGLE_QUOTED.match(b.original.string):
            values[b.key] = b.value
            continue
        try:
            values[b.key] = sub.substitute(b.value)
        except InvalidTemplate:
            raise ComposeError(f"invalid interpolation format in {b.key}", file, b.original.line) from None
        except MissingRequired as e:
            raise ComposeError(str(e), file, b.original.line, b.key) from None
    return values


def read(path: str, lookup, shown: str | None = None) -> dict[str, str]:
    shown = shown or path
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ComposeError(f"env file: {e.strerror}", shown) from None
    if len(raw) > MAX_BYTES:
        raise ComposeError(f"env file larger than {MAX_BYTES >> 20} MiB", shown)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ComposeError("env file is not UTF-8", shown) from None
    return parse(text, lookup, shown)
