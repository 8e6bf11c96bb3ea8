"""Heredocs (``RUN <<EOF``, ``COPY <<-"EOF" /file``, ``RUN 3<<EOF``, ``RUN << EOF``) in an instruction's
line, with BuildKit's rules (``parser.go``: ``ParseHeredoc``, ``heredocsFromLine``).

The line is split into words by the shell lexer with quotes and escapes kept; a word
``[N]<<[-][blanks]NAME`` names a heredoc. A quote anywhere in NAME turns off variable expansion of
the body. BuildKit's lexer keeps ``<<`` and the blanks after it in one word (dockerfile 1.16), but
not the blanks after ``<<-``: ``RUN <<- EOF`` is then no heredoc there, although its own tests and
the rule (``\\s*`` after the optional ``-``) say it is; it is one here.
"""

from __future__ import annotations

import re

from .expand import ExpandError, Lexer
from .nodes import Heredoc, Node

HEREDOC_INSTRUCTIONS = ("run", "copy", "add")
# Go's \s is ASCII: [\t\n\f\r ]
_RE_HEREDOC = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$", re.S)
_RE_DASH_ONLY = re.compile(r"^\d*<<-$")


class HeredocError(ValueError):
    pass


def parse_heredoc(word: str) -> Heredoc | None:
    """``<<EOF``, ``<<-EOF``, ``<<"EOF"``, ``3<<EOF``, ``<< EOF`` → a Heredoc (without content);
    None when ``word`` is no heredoc; HeredocError for a heredoc word that does not lex
    (``<<'EOF``)."""
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
    except ExpandError as e:
        raise HeredocError(str(e)) from None
    if len(words) != 1:
        return None
    try:
        raw = lex.process(rest, {}, raw_quotes=True, skip_unset=True).words
    except ExpandError as e:
        raise HeredocError(str(e)) from None
    if len(raw) != 1:
        raise HeredocError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    q = words[0].count("'") + words[0].count('"')
    qraw = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=words[0], expand=q == qraw, chomp=chomp, fd=fd)


def heredocs_in_line(line: str) -> list[Heredoc]:
    """The heredocs a line names, in order; raises HeredocError."""
    if "<<" not in line:
        return []
    try:
        words = Lexer("\\").process(line, {}, raw_quotes=True, raw_escapes=True, skip_unset=True).words
    except ExpandError:
        return []  # BuildKit ignores a line that does not lex here
    merged: list[str] = []
    for w in words:
        if merged and _RE_DASH_ONLY.match(merged[-1]):
            merged[-1] += " " + w  # "<<- EOF" (see the module doc)
        else:
            merged.append(w)
    return [h for h in (parse_heredoc(w) for w in merged) if h is not None]


def can_contain_heredoc(node: Node) -> bool:
    n = node.sub if node.cmd == "onbuild" and node.sub is not None else node
    return n.cmd in HEREDOC_INSTRUCTIONS and not n.json
