"""The Dockerfile parser: text → a list of :class:`~.nodes.Node` (one per instruction), BuildKit's rules.

Follows ``moby/buildkit frontend/dockerfile/parser`` (``parser.go``, ``directives.go``):

* the file is bytes: lines end at ``\\n`` only (a ``\\r``, ``\\v`` or U+2028 inside a line is text),
  and a Dockerfile that is not UTF-8 is read as it is (its stray bytes go to RUN commands
  untouched); a line over 65535 bytes is refused, as BuildKit's line scanner refuses it;
* **parser directives** (``# escape=``` ``, ``# syntax=...``, ``# check=...``) are recognised only at
  the top, before any instruction, comment or blank line; ``syntax`` and ``check`` are ignored; a
  directive may appear once; an unknown one ends the directive block (it is then a comment);
* **comments** are lines whose first non-blank character is ``#``; ``#`` elsewhere is text;
* **line continuations**: the escape character as the last non-blank character of a line joins the
  next line; comment lines and empty lines inside a continuation are skipped;
* each logical line is split into flags and arguments by :mod:`.arguments`;
* **heredocs** (:mod:`.heredocs`) on RUN/COPY/ADD in shell form: the body lines follow the
  instruction, up to the terminator (tabs stripped with ``<<-``); a quoted terminator disables
  variable expansion of the body.

Every node keeps its first and last line number; errors are :class:`jupybox.errors.BuildError`
with the message ``FILE:LINE: ...``.
"""

from __future__ import annotations

import re

from . import gostrings
from .arguments import node_from_line
from .heredocs import HeredocError, can_contain_heredoc, heredocs_in_line
from .nodes import Dockerfile, Node, error

DIRECTIVES = ("escape", "syntax", "check")
MAX_LINE = 65535  # bytes: bufio.MaxScanTokenSize - 1, BuildKit's limit

# Go's \s is [\t\n\f\r ]; "." does not match "\n"
_RE_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return gostrings.trim_left_space(s).startswith("#")


def _lines(text: str, filename: str) -> list[str]:
    """The lines, each with its ``\\n``; refuses a line longer than BuildKit's scanner reads."""
    lines = text.split("\n")
    last = lines.pop()
    out = [ln + "\n" for ln in lines]
    if last:
        out.append(last)
    for i, ln in enumerate(out):
        if len(ln) > MAX_LINE // 4 and gostrings.utf8_len(_trim_one_newline(ln)) > MAX_LINE:
            raise error(filename, i + 1, f"dockerfile line greater than max allowed size of {MAX_LINE}")
    return out


def _trim_one_newline(s: str) -> str:
    return s[:-1] if s.endswith("\n") else s


class _Directives:
    """BuildKit's DirectiveParser, with the escape character and the continuation rule it sets."""

    def __init__(self, filename: str):
        self.filename = filename
        self.done = False
        self.seen: set[str] = set()
        self.syntax: str | None = None
        self.set_escape("\\")

    def set_escape(self, value: str) -> None:
        self.escape = value
        e = re.escape(value)
        # the escape character last on a line (spaces after it allowed), not itself escaped
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z", re.S)

    def line(self, token: str, lineno: int) -> None:
        if self.done:
            return
        if not token.startswith("#"):
            self.done = True
            return
        m = _RE_DIRECTIVE.match(gostrings.trim_left_space(token[1:]))
        if not m or m.group(1).lower() not in DIRECTIVES:
            self.done = True
            return
        key = m.group(1).lower()
        if key in self.seen:
            raise error(self.filename, lineno, f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            value = m.group(2)
            if value not in ("`", "\\"):
                raise error(self.filename, lineno, f"invalid escape token '{value}' does not match ` or \\")
            self.set_escape(value)
        elif key == "syntax":
            self.syntax = m.group(2)

    def trim_continuation(self, s: str) -> tuple[str, bool]:
        """(the line without its continuation character, whether the logical line ends here)."""
        if self.continuation.search(s):
            return self.continuation.sub(r"\1", s, count=1), False
        return s, True


def parse(text: str | bytes, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; raises BuildError("FILE:LINE: message")."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _lines(text, filename)
    d = _Directives(filename)
    nodes: list[Node] = []
    warnings: list[str] = []
    i = 0
    n = len(lines)

    def process_line(raw: str, strip_left: bool, lineno: int) -> str:
        token = _trim_newline(raw)
        if strip_left:
            token = gostrings.trim_left_space(token)
        d.line(token, lineno)
        return "" if _is_comment(token) else token

    while i < n:
        raw = lines[i]
        i += 1
        start = i
        line, end_of_line = d.trim_continuation(process_line(raw, True, start))
        if end_of_line and line == "":
            continue
        empty_continuation = False
        while not end_of_line and i < n:
            raw = lines[i]
            i += 1
            token = process_line(raw, False, i)
            if _is_comment(raw):
                continue
            if not gostrings.trim_left_space(_trim_newline(token)):
                empty_continuation = True
                continue
            more, end_of_line = d.trim_continuation(token)
            line += more
        if empty_continuation:
            warnings.append(f"{filename}:{start}: empty continuation line")
        try:
            node = node_from_line(line, d.escape, filename)
        except ValueError as e:
            raise error(filename, start, str(e)) from None
        node.start = start
        if can_contain_heredoc(node) and "<<" in line:
            try:
                docs = heredocs_in_line(line)
            except HeredocError as e:
                raise error(filename, start, str(e)) from None
            for doc in docs:
                parts = []
                terminated = False
                while i < n:
                    raw = lines[i]
                    i += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    parts.append(raw)
                if not terminated:
                    raise error(filename, start, f"unterminated heredoc {doc.name!r}")
                doc.content = "".join(parts)
                node.heredocs.append(doc)
        node.end = i
        nodes.append(node)
    if not nodes:
        raise error(filename, max(n, 1), "file with no instructions")
    return Dockerfile(nodes=nodes, escape=d.escape, filename=filename, warnings=warnings, syntax=d.syntax)
