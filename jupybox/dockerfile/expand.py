"""Variable expansion in Dockerfile words, with BuildKit's rules (``frontend/dockerfile/shell/lex.go``).

What is expanded (by the builder, in the instructions where Docker expands: FROM, ADD, COPY, ENV,
ARG, LABEL, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL and the ``--from``/``--chown``/``--chmod``
flags; never RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK or ONBUILD, which the shell or a later build
sees verbatim):

* ``$VAR`` and ``${VAR}``; an unset variable is the empty string; ``$`` followed by no name stays ``$``;
* ``${VAR:-word}`` / ``${VAR-word}``: word if VAR is unset (or, with ``:``, empty);
* ``${VAR:+word}`` / ``${VAR+word}``: word if VAR is set (and, with ``:``, not empty), else empty;
* ``${VAR:?msg}`` / ``${VAR?msg}``: an error if VAR is unset (or empty);
* ``${VAR#pat}`` ``${VAR##pat}`` ``${VAR%pat}`` ``${VAR%%pat}``: remove the shortest/longest prefix/suffix
  matching the glob ``pat`` (``*`` and ``?``); ``${VAR/pat/repl}`` and ``${VAR//pat/repl}``: replace the
  first/every match;
* quotes: ``'...'`` is literal; ``"..."`` expands ``$`` and lets the escape character escape only
  ``"``, ``$`` and itself; outside quotes the escape character (``\\`` or ``# escape=```) makes the next
  character literal and is removed; the quotes themselves are removed.

:meth:`Lexer.process_words` also splits the result into words on whitespace outside quotes
(after expansion, so a value with spaces becomes several words, as in Docker). Every result
records the variable names it looked up (``used``), which the build cache keys on.
"""

from __future__ import annotations

import re
from typing import Mapping

_EOF = ""
_SPECIAL_PARAMS = set("@*#?-$!0")


class ExpandError(ValueError):
    """A syntax error in a word (bad substitution, missing quote or brace, ``${X:?}``)."""


class Expansion:
    __slots__ = ("word", "words", "used")

    def __init__(self, word: str, words: list[str], used: set[str]):
        self.word = word
        self.words = words
        self.used = used  # names looked up, found or not


class _Words:
    __slots__ = ("word", "words", "in_word")

    def __init__(self):
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Scanner:
    __slots__ = ("s", "i", "n")

    def __init__(self, s: str):
        self.s = s
        self.i = 0
        self.n = len(s)

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else _EOF

    def next(self) -> str:
        if self.i < self.n:
            ch = self.s[self.i]
            self.i += 1
            return ch
        return _EOF


class _Word:
    def __init__(self, lexer: "Lexer", text: str, env: Mapping[str, str], raw_quotes: bool, raw_escapes: bool,
                 skip_unset: bool, skip_quotes: bool = False):
        self.esc = lexer.escape
        self.sc = _Scanner(text)
        self.env = env
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes
        self.used: set[str] = set()

    def get_env(self, name: str) -> tuple[str, bool]:
        self.used.add(name)
        if name in self.env:
            return self.env[name], True
        return "", False

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        sc = self.sc
        out: list[str] = []
        words = _Words()
        while sc.peek() != _EOF:
            ch = sc.peek()
            if stop != _EOF and ch == stop:
                sc.next()
                return "".join(out), words.get()
            if ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                words.add_string(tmp)
            elif ch == "'" and not self.skip_quotes:
                tmp = self.single_quote()
                out.append(tmp)
                words.add_raw_string(tmp)
            elif ch == '"' and not self.skip_quotes:
                tmp = self.double_quote()
                out.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = sc.next()
                if ch == self.esc:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        out.append(ch)
                    ch = sc.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                out.append(ch)
        if stop != _EOF:
            raise ExpandError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.get()

    def single_quote(self) -> str:
        sc = self.sc
        out = []
        ch = sc.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == _EOF:
                raise ExpandError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        sc = self.sc
        out = []
        ch = sc.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            p = sc.peek()
            if p == _EOF:
                raise ExpandError("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = sc.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if p == "$":
                out.append(self.dollar())
                continue
            ch = sc.next()
            if ch == self.esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = sc.peek()
                if nxt == _EOF:
                    continue
                if nxt in ('"', "$", self.esc):
                    ch = sc.next()
            out.append(ch)

    def name(self) -> str:
        sc = self.sc
        out = []
        while sc.peek() != _EOF:
            ch = sc.peek()
            if not out and ch.isdigit():
                while sc.peek() != _EOF and sc.peek().isdigit():
                    out.append(sc.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            out.append(sc.next())
        return "".join(out)

    def dollar(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        sc.next()
        p = sc.peek()
        if p == _EOF:
            raise ExpandError("syntax error: missing '}'")
        if p in ("{", "}", ":"):
            raise ExpandError("syntax error: bad substitution")
        name = self.name()
        ch = sc.next()
        chs = ch
        null_is_unset = False
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == ":":
            null_is_unset = True
            ch = sc.next()
            chs += ch
            if ch not in "+-?#%" or ch == _EOF:
                # buildkit falls through to the word, then rejects the modifier
                try:
                    self.process_stop_on("}", False)
                except ExpandError:
                    if sc.peek() == _EOF:
                        raise ExpandError("syntax error: missing '}'") from None
                    raise
                raise ExpandError(f"unsupported modifier ({chs}) in substitution")
        if ch in ("+", "-", "?", "#", "%"):
            try:
                word, _ = self.process_stop_on("}", ch in "#%")
            except ExpandError:
                if sc.peek() == _EOF:
                    raise ExpandError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.skip_unset and not found:
                return "${" + name + chs + word + "}"
            if ch == "-":
                return word if (not found or (null_is_unset and value == "")) else value
            if ch == "+":
                return "" if (not found or (null_is_unset and value == "")) else word
            if ch == "?":
                if not found:
                    raise ExpandError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise ExpandError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = sc.peek() == "/"
            if replace_all:
                sc.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except ExpandError:
                if sc.peek() == _EOF:
                    raise ExpandError("syntax error: missing '/' in ${}") from None
                raise
            try:
                repl, _ = self.process_stop_on("}", True)
            except ExpandError:
                if sc.peek() == _EOF:
                    raise ExpandError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.skip_unset and not found:
                return "${%s/%s/%s}" % (name, pattern, repl)
            rx = _pattern_regex(pattern, True, False)
            if replace_all:
                return rx.sub(lambda _m: repl, value)
            return rx.sub(lambda _m: repl, value, count=1)
        if ch == _EOF:
            raise ExpandError("syntax error: missing '}'")
        raise ExpandError(f"unsupported modifier ({chs}) in substitution")


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """A shell glob (``*``, ``?``, ``\\`` escapes; no brackets) as a regex, like buildkit."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    n = len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            if i < n and pattern[i] in "}/":
                continue
            if i >= n or pattern[i] not in "*?\\":
                raise ExpandError(f"invalid pattern ({pattern}) in substitution: invalid escape "
                                  f"'\\{pattern[i] if i < n else ''}'")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy, True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i:i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


class Lexer:
    """Expands variables in one word (``process_word``) or splits into words (``process_words``)."""

    def __init__(self, escape: str = "\\"):
        self.escape = escape

    def process(self, text: str, env: Mapping[str, str], *, raw_quotes: bool = False, raw_escapes: bool = False,
                skip_unset: bool = False, skip_quotes: bool = False) -> Expansion:
        """``skip_quotes``: quotes are plain characters (heredoc bodies); ``raw_escapes``: escape
        characters are kept; ``skip_unset``: unset variables stay as written."""
        w = _Word(self, text, env, raw_quotes, raw_escapes, skip_unset, skip_quotes)
        try:
            word, words = w.process_stop_on(_EOF, raw_escapes)
        except ExpandError as e:
            raise ExpandError(f"failed to process {text!r}: {e}") from None
        return Expansion(word, words, w.used)

    def process_word(self, text: str, env: Mapping[str, str]) -> str:
        return self.process(text, env).word

    def process_words(self, text: str, env: Mapping[str, str]) -> list[str]:
        return self.process(text, env).words
