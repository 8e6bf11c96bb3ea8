"""One instruction's line → a :class:`~.nodes.Node`: its flags and arguments, with BuildKit's rules
(``frontend/dockerfile/parser/line_parsers.go`` and ``split_command.go``).

* **flags** (``--from=x``, ``--chown=u:g``, ``--link``) are the leading ``--`` words; quotes and
  the escape character (``\\``, or ``# escape=```) are processed in them; ``--`` ends them;
* JSON arrays (``["a", "b"]``) for RUN/CMD/ENTRYPOINT/SHELL (else the rest of the line as one
  string); JSON or whitespace-separated lists for COPY/ADD/VOLUME; ``K=V`` pairs (or the legacy
  ``K V``) for ENV/LABEL; words (quotes kept) for ARG; the whole rest for USER/WORKDIR/...

JSON is Go's: ``NaN``, ``Infinity`` or a number too big for a float64 is not JSON there, so such a
line is in shell form; a lone surrogate escape (``"\\ud800"``) and stray bytes become U+FFFD.
"""

from __future__ import annotations

import json
import math
import re

from . import gostrings
from .gostrings import is_space
from .nodes import Node

_RE_WS = re.compile(r"[\t\v\f\r ]+")  # BuildKit's reWhitespace


class NotStrings(ValueError):
    def __init__(self):
        super().__init__("when using JSON array syntax, arrays must be comprised of strings only")


def parse_words(rest: str, escape: str) -> list[str]:
    """Words separated by whitespace, quotes and escapes kept (expansion removes them)."""
    words: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    buf: list[str] = []
    i = 0
    n = len(rest)
    while i <= n:
        ch = rest[i] if i < n else ""
        if phase == 0:
            if i == n:
                break
            if is_space(ch):
                i += 1
                continue
            phase = 1
        if phase in (1, 2) and i == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == 1:
            if is_space(ch):
                phase = 0
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                i += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = 2
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
            i += 1
            continue
        if ch == quote:
            phase = 1
        if ch == escape and quote != "'":
            if i + 1 == n:
                phase = 1
                i += 1
                continue
            buf.append(ch)
            i += 1
            ch = rest[i]
        buf.append(ch)
        i += 1
    return words


def _go_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"json: cannot unmarshal number {text} into a float64")
    return value


def _no_constant(name: str):
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def parse_json(rest: str) -> list[str] | None:
    """A JSON array of strings, or None when ``rest`` is not JSON as Go reads it (then it is the
    shell form); raises :class:`NotStrings` for a JSON array of anything else."""
    s = gostrings.trim_left_space(rest)
    if not s.startswith("["):
        return None
    try:
        value = json.loads(s, parse_constant=_no_constant, parse_float=_go_float, parse_int=_go_float)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(x, str) for x in value):
        raise NotStrings()
    return [gostrings.valid_text(x) for x in value]


def _name_val(rest: str, key: str, escape: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs, BuildKit's node arguments: key, value, separator per pair)."""
    words = parse_words(rest, escape)
    if not words:
        return [], []
    if "=" not in words[0]:
        parts = _RE_WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return [(parts[0], parts[1])], [parts[0], parts[1], ""]
    pairs, args = [], []
    for w in words:
        if "=" not in w:
            raise ValueError(f"Syntax error - can't find = in {gostrings.quote(w)}. Must be of the form: "
                             f"name=value")
        k, _, v = w.partition("=")
        pairs.append((k, v))
        args += [k, v, "="]
    return pairs, args


def extract_flags(line: str, escape: str = "\\") -> tuple[str, list[str]]:
    """Leading ``--name[=value]`` words → (rest of the line, flags). Quotes and the escape
    character in a flag are processed (``--chown="a b"``); ``--`` ends the flags.
    BuildKit reads this part byte by byte, so a UTF-8 character whose bytes include 0x85 or 0xA0
    splits a flag there; the documented behaviour (and here) is one character at a time."""
    flags: list[str] = []
    i = 0
    n = len(line)
    while True:
        while i < n and is_space(line[i]):
            i += 1
        if i >= n:
            return "", flags
        if not line.startswith("--", i):
            return line[i:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while i < n:
            ch = line[i]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == escape:
                    if i + 1 == n:
                        quote = ""
                    else:
                        i += 1
                        word.append(line[i])
                else:
                    word.append(ch)
                i += 1
                continue
            if is_space(ch):
                break
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
            elif ch == escape:
                if i + 1 < n:
                    i += 1
                    word.append(line[i])
            else:
                word.append(ch)
            i += 1
        w = "".join(word)
        if w == "--":
            return gostrings.trim_left_space(line[i:]), flags
        if blank_ok or w:
            flags.append(w)


def split_command(line: str, escape: str) -> tuple[str, str, list[str], str]:
    """(command in lower case, as written, flags, arguments)."""
    parts = _RE_WS.split(gostrings.trim_space(line), maxsplit=1)
    keyword = parts[0]
    args = ""
    flags: list[str] = []
    if len(parts) == 2:
        args, flags = extract_flags(parts[1], escape)
    return keyword.lower(), keyword, flags, gostrings.trim_space(args)


def _health_args(rest: str) -> tuple[list[str], bool]:
    """HEALTHCHECK: the type, then the command as RUN takes it."""
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    if sep == 0:
        return [], False
    tail = gostrings.trim_left_space(rest[sep:])
    if not tail:
        return [rest[:sep]], False
    j = parse_json(tail)
    if j is not None:
        return [rest[:sep]] + j, True
    return [rest[:sep], tail], False


def node_from_line(line: str, escape: str, filename: str) -> Node:
    """Raises ValueError (the caller adds FILE:LINE)."""
    cmd, keyword, flags, rest = split_command(line, escape)
    node = Node(cmd=cmd, keyword=keyword, original=gostrings.trim_space(line), rest=rest, flags=flags,
                filename=filename)
    if cmd in ("add", "copy", "volume"):
        j = parse_json(rest)
        if j is not None:
            node.args, node.json = j, True
        else:
            node.args = _RE_WS.split(rest) if rest else []
    elif cmd in ("cmd", "entrypoint", "run", "shell"):
        if rest:
            j = parse_json(rest)
            if j is not None:
                node.args, node.json = j, True
            else:
                node.args = [rest]
    elif cmd == "arg":
        node.args = parse_words(rest, escape)
    elif cmd in ("env", "label"):
        node.kv, node.args = _name_val(rest, cmd.upper(), escape)
    elif cmd in ("expose", "from"):
        node.args = _RE_WS.split(rest) if rest else []
    elif cmd == "healthcheck":
        node.args, node.json = _health_args(rest)
    elif cmd in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    elif cmd == "onbuild":
        if rest:
            node.sub = node_from_line(rest, escape, filename)
            node.args = [node.sub.keyword] + node.sub.args
    else:
        node.args = [""]  # BuildKit's parseIgnore: an unknown instruction keeps one empty argument
    return node
