"""How the magics read their arguments: with jupybox's own parsers, errors as IPython's
UsageError (one line, the kernel lives on)."""

from __future__ import annotations

from IPython.core.error import UsageError as IPythonUsageError

from .. import errors


def parse(parser, words: list[str]):
    """Parse with jupybox's parser; its UsageError becomes IPython's (one line, kernel alive)."""
    from ..cli.parser import _HelpShown

    try:
        return parser.parse_args(words)
    except errors.UsageError as e:
        raise IPythonUsageError(str(e)) from None
    except _HelpShown:
        return None


def names(values: list[str], flag: str) -> list[str]:
    out = []
    for v in values:
        for name in v.split(","):
            name = name.strip()
            if not name:
                continue
            if not name.isidentifier():
                raise IPythonUsageError(f"{flag} {name}: not a Python variable name")
            out.append(name)
    return out
