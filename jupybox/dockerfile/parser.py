"""The Dockerfile parser: text → a list of :class:`Node` (one per instruction), BuildKit's rules.

Follows ``moby/buildkit frontend/dockerfile/parser`` (``parser.go``, ``line_parsers.go``,
``split_command.go``):

* **parser directives** (``# escape=``` ``, ``# syntax=...``, ``# check=...``) are recognised only at
  the top, before any instruction, comment or blank line; ``syntax`` and ``check`` are ignored; a
  directive may appear once; an unknown one ends the directive block (it is then a comment);
* **comments** are lines whose first non-blank character is ``#``; ``#`` elsewhere is text;
* **line continuations**: the escape character as the last non-blank character of a line joins the
  next line; comment lines and empty lines inside a continuation are skipped;
* **flags** (``--from=x``, ``--chown=u:g``, ``--link``) are the leading ``--`` words of the arguments;
* per-instruction argument forms: JSON arrays (``["a", "b"]``) for RUN/CMD/ENTRYPOINT/SHELL (else the
  rest of the line as one string), JSON or whitespace-separated lists for COPY/ADD/VOLUME, ``K=V``
  pairs (or the legacy ``K V``) for ENV/LABEL, words for ARG, the whole rest for USER/WORKDIR/...;
* **heredocs** (``RUN <<EOF``, ``COPY <<-"EOF" /file``) on RUN/COPY/ADD in shell form: the body lines
  follow the instruction, up to the terminator (tabs stripped with ``<<-``); a quoted terminator
  disables variable expansion of the body.

Every node keeps its first and last line number; errors are :class:`jupybox.errors.BuildError`
with the message ``FILE:LINE: ...``.
"""

from __future__ import annotations

import json
import re

from ..errors import BuildError
from .expand import ExpandError, Lexer

DIRECTIVES = ("escape", "syntax", "check")
HEREDOC_INSTRUCTIONS = ("run", "copy", "add")

_RE_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_RE_WS = re.compile(r"[\t\v\f\r ]+")
_RE_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_RE_LEADING_TABS = re.compile(r"(?m)^\t+")


def error(filename: str, line: int, message: str) -> BuildError:
    return BuildError(f"{filename}:{line}: {message}")


class Heredoc:
    __slots__ = ("name", "content", "expand", "chomp", "fd")

    def __init__(self, name: str, content: str = "", expand: bool = True, chomp: bool = False, fd: int = 0):
        self.name = name
        self.content = content
        self.expand = expand
        self.chomp = chomp
        self.fd = fd

    def text(self) -> str:
        """The body, with leading tabs removed for ``<<-``."""
        return _RE_LEADING_TABS.sub("", self.content) if self.chomp else self.content

    def __repr__(self) -> str:
        return f"Heredoc({self.name!r}, {self.content!r}, expand={self.expand}, chomp={self.chomp})"


class Node:
    """One instruction as written. ``args`` depends on the instruction (see the module doc);
    ``kv`` holds ENV/LABEL pairs (values still quoted: expansion removes the quotes)."""

    def __init__(self, cmd: str, keyword: str, original: str, rest: str, flags: list[str] | None = None,
                 args: list[str] | None = None, kv: list[tuple[str, str]] | None = None, json: bool = False,
                 start: int = 0, end: int = 0, heredocs: list[Heredoc] | None = None, sub: "Node | None" = None,
                 filename: str = "Dockerfile"):
        self.cmd = cmd  # lower case: "run", "copy", ...
        self.keyword = keyword  # as written
        self.original = original  # the logical line (continuations joined), stripped
        self.rest = rest  # the arguments after the flags
        self.flags = flags if flags is not None else []
        self.args = args if args is not None else []
        self.kv = kv
        self.json = json
        self.start = start
        self.end = end
        self.heredocs = heredocs if heredocs is not None else []
        self.sub = sub  # the instruction of an ONBUILD
        self.filename = filename

    def error(self, message: str) -> BuildError:
        return error(self.filename, self.start, message)

    def __repr__(self) -> str:
        return f"<Node {self.filename}:{self.start} {self.original[:60]!r}>"


class Dockerfile:
    def __init__(self, nodes: list[Node], escape: str = "\\", filename: str = "Dockerfile",
                 warnings: list[str] | None = None, syntax: str | None = None):
        self.nodes = nodes
        self.escape = escape
        self.filename = filename
        self.warnings = warnings if warnings is not None else []
        self.syntax = syntax


# ---------------------------------------------------------------------------------------------
# argument parsers (line_parsers.go)


def parse_words(rest: str, escape: str) -> list[str]:
    """Words separated by whitespace, quotes kept (they are removed by expansion)."""
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
            if ch.isspace():
                i += 1
                continue
            phase = 1
        if phase in (1, 2) and i == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == 1:
            if ch.isspace():
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
        # in a quote
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


def _parse_json(rest: str) -> list[str] | None:
    """A JSON array of strings, or None when ``rest`` is not JSON (then it is the shell form)."""
    s = rest.lstrip()
    if not s.startswith("["):
        return None
    try:
        value = json.loads(s)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(x, str) for x in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _name_val(rest: str, key: str, escape: str) -> list[tuple[str, str]]:
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _RE_WS.split(rest, maxsplit=1)
        if len(parts) < 2 or not parts[1]:
            raise ValueError(f"{key} must have two arguments")
        return [(parts[0], parts[1])]
    out = []
    for w in words:
        if "=" not in w:
            raise ValueError(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        out.append((k, v))
    return out


def extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading ``--name[=value]`` words → (rest of the line, flags). Quotes and ``\\`` in a flag
    are processed (``--chown="a b"``); ``--`` ends the flags."""
    flags: list[str] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return "", flags
        if not line.startswith("--", i):
            return line[i:], flags
        word: list[str] = []
        quote = ""
        while i < n:
            ch = line[i]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and i + 1 < n:
                    i += 1
                    word.append(line[i])
                else:
                    word.append(ch)
                i += 1
                continue
            if ch.isspace():
                break
            if ch in ("'", '"'):
                quote = ch
            elif ch == "\\":
                if i + 1 < n:
                    i += 1
                    word.append(line[i])
            else:
                word.append(ch)
            i += 1
        w = "".join(word)
        if w == "--":
            while i < n and line[i].isspace():
                i += 1
            return line[i:], flags
        flags.append(w)


def _split_command(line: str) -> tuple[str, str, list[str], str]:
    parts = _RE_WS.split(line.strip(), maxsplit=1)
    keyword = parts[0]
    args = ""
    flags: list[str] = []
    if len(parts) == 2:
        args, flags = extract_flags(parts[1])
    return keyword.lower(), keyword, flags, args.strip()


def _node_from_line(line: str, escape: str, filename: str) -> Node:
    cmd, keyword, flags, rest = _split_command(line)
    node = Node(cmd=cmd, keyword=keyword, original=line.strip(), rest=rest, flags=flags, filename=filename)
    if cmd in ("add", "copy", "volume"):
        j = _parse_json(rest)
        if j is not None:
            node.args, node.json = j, True
        else:
            node.args = _RE_WS.split(rest) if rest else []
    elif cmd in ("cmd", "entrypoint", "run", "shell"):
        if rest:
            j = _parse_json(rest)
            if j is not None:
                node.args, node.json = j, True
            else:
                node.args = [rest]
    elif cmd == "arg":
        node.args = parse_words(rest, escape)
    elif cmd in ("env", "label"):
        node.kv = _name_val(rest, cmd.upper(), escape)
        node.args = [x for kv in node.kv for x in kv]
    elif cmd in ("expose", "from"):
        node.args = _RE_WS.split(rest) if rest else []
    elif cmd == "healthcheck":
        m = re.match(r"(\S+)\s*(.*)$", rest, re.S)
        if m:
            node.args = [m.group(1)]
            tail = m.group(2)
            if tail:
                j = _parse_json(tail)
                if j is not None:
                    node.args += j
                    node.json = True
                else:
                    node.args.append(tail)
    elif cmd in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    elif cmd == "onbuild":
        if rest:
            node.sub = _node_from_line(rest, escape, filename)
            node.args = [node.sub.keyword] + node.sub.args
    return node


# ---------------------------------------------------------------------------------------------
# heredocs


def parse_heredoc(word: str) -> Heredoc | None:
    """``<<EOF``, ``<<-EOF``, ``<<"EOF"``, ``3<<EOF`` → a Heredoc (without content); else None."""
    m = _RE_HEREDOC.match(word)
    if not m:
        return None
    fd = int(m.group(1)) if m.group(1) else 0
    chomp = m.group(2) == "-"
    rest = m.group(3)
    if not rest:
        return None
    lex = Lexer("\\")
    try:
        words = lex.process(rest, {}, skip_unset=True).words
        if len(words) != 1:
            return None
        raw = lex.process(rest, {}, raw_quotes=True, skip_unset=True).words
    except ExpandError:
        return None
    if len(raw) != 1:
        return None
    q = words[0].count("'") + words[0].count('"')
    qraw = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=words[0], expand=q == qraw, chomp=chomp, fd=fd)


def heredocs_in_line(line: str) -> list[Heredoc]:
    if "<<" not in line:
        return []
    lex = Lexer("\\")
    try:
        words = lex.process(line, {}, raw_quotes=True, raw_escapes=True, skip_unset=True).words
    except ExpandError:
        return []
    return [h for h in (parse_heredoc(w) for w in words) if h is not None]


def _can_contain_heredoc(node: Node) -> bool:
    n = node.sub if node.cmd == "onbuild" and node.sub is not None else node
    return n.cmd in HEREDOC_INSTRUCTIONS and not n.json


# ---------------------------------------------------------------------------------------------
# the file


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return _trim_newline(s).lstrip().startswith("#")


def parse(text: str | bytes, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; raises BuildError("FILE:LINE: message")."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(filename, 1, f"the Dockerfile is not UTF-8 ({e})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines(keepends=True)
    escape = "\\"
    cont_re = re.compile(r"([^\\])\\[ \t]*$|^\\[ \t]*$")
    directives_done = False
    seen: set[str] = set()
    syntax = None
    nodes: list[Node] = []
    warnings: list[str] = []
    i = 0
    n = len(lines)

    def directive(token: str, lineno: int) -> None:
        nonlocal directives_done, escape, cont_re, syntax
        if directives_done:
            return
        m = _RE_DIRECTIVE.match(token)
        if not m:
            directives_done = True
            return
        key = m.group(1).lower()
        if key not in DIRECTIVES:
            directives_done = True
            return
        if key in seen:
            raise error(filename, lineno, f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            value = m.group(2)
            if value not in ("`", "\\"):
                raise error(filename, lineno, f"invalid escape token '{value}' does not match ` or \\")
            escape = value
            e = re.escape(value)
            cont_re = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")
        elif key == "syntax":
            syntax = m.group(2)

    def process_line(raw: str, strip_left: bool, lineno: int) -> str:
        token = _trim_newline(raw)
        if strip_left:
            token = token.lstrip()
        directive(token, lineno)
        return "" if token.startswith("#") else token

    def trim_continuation(s: str) -> tuple[str, bool]:
        if cont_re.search(s):
            return cont_re.sub(r"\1", s, count=1), False
        return s, True

    while i < n:
        raw = lines[i]
        i += 1
        start = i
        token = process_line(raw, True, start)
        line, end_of_line = trim_continuation(token)
        if end_of_line and line == "":
            continue
        empty_continuation = False
        while not end_of_line and i < n:
            raw = lines[i]
            i += 1
            token = process_line(raw, False, i)
            if _is_comment(raw):
                continue
            if not _trim_newline(token).strip():
                empty_continuation = True
                continue
            more, end_of_line = trim_continuation(token)
            line += more
        if empty_continuation:
            warnings.append(f"{filename}:{start}: empty continuation line")
        try:
            node = _node_from_line(line, escape, filename)
        except ValueError as e:
            raise error(filename, start, str(e)) from None
        node.start = start
        if _can_contain_heredoc(node):
            for doc in heredocs_in_line(line):
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
    return Dockerfile(nodes=nodes, escape=escape, filename=filename, warnings=warnings, syntax=syntax)
