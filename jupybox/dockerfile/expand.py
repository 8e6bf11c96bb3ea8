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
(after expansion, so a value with spaces becomes several words, as in Docker); ``<<`` and the
blanks after it stay in one word (heredocs, dockerfile 1.16). Every result records the variable
names it looked up (``used``), which the build cache keys on.

**Limits.** Expansion is linear in what it produces, and may add at most :data:`MAX_GROWTH`
(128 KiB, the kernel's ``MAX_ARG_STRLEN``: no argument or environment string of a RUN command can
be longer) to the text of one word: ``ARG A1=${A0}${A0}`` repeated (each value twice the last)
stops there with an error instead of filling the memory. BuildKit has no such limit.
"""

from __future__ import annotations

from typing import Mapping

from . import gostrings
from .shellpattern import Pattern, PatternError, trim_prefix, trim_suffix

MAX_GROWTH = 128 * 1024  # characters variables may add to one word (see the module doc)
_EOF = ""
_SPECIAL_PARAMS = set("@*#?-$!0")
_HEREDOC_BLANKS = ("\t", "\r", " ")
_RUNS = gostrings.space_runs()


class ExpandError(ValueError):
    """A syntax error in a word (bad substitution, missing quote or brace, ``${X:?}``), or a word
    that grows over :data:`MAX_GROWTH`."""


class Expansion:
    __slots__ = ("word", "words", "used")

    def __init__(self, word: str, words: list[str], used: set[str]):
        self.word = word
        self.words = words
        self.used = used  # names looked up, found or not


class _Words:
    """Word splitting of the output (BuildKit's wordsStruct), with pieces joined once per word.

    One per level of nesting: BuildKit's shares one buffer between the levels, and the nested
    word of ``${VAR#x}`` or ``${VAR:-x}`` empties it, so ``EXPOSE 80${P#x}`` (P=8) gives it the
    word ``8`` where the documented rules (and ProcessWord, BuildKit's own single-word path) give
    ``808``; the documented rules are followed here."""

    __slots__ = ("buf", "size", "words", "in_word")

    def __init__(self):
        self.buf: list[str] = []
        self.size = 0
        self.words: list[str] = []
        self.in_word = False

    def _flush(self) -> None:
        self.words.append("".join(self.buf))
        self.buf = []
        self.size = 0
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if gostrings.is_space(ch):
            if self.in_word and self.size:
                self._flush()
        else:
            self.add_raw_string(ch)

    def add_string(self, s: str) -> None:
        for m in _RUNS.finditer(s):
            if m.group(1) is not None:
                if self.in_word and self.size:
                    self._flush()
            else:
                self.add_raw_string(m.group(2))

    def add_raw_string(self, s: str) -> None:
        self.buf.append(s)
        self.size += len(s)
        self.in_word = True

    def get(self) -> list[str]:
        if self.size:
            self._flush()
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
        self.budget = MAX_GROWTH

    def get_env(self, name: str) -> tuple[str, bool]:
        self.used.add(name)
        if name in self.env:
            return self.env[name], True
        return "", False

    def charge(self, value: str) -> str:
        """Count what a substitution brings into the word (at every level of nesting)."""
        self.budget -= len(value)
        if self.budget < 0:
            raise ExpandError(f"variables expand to more than {MAX_GROWTH} characters in one word")
        return value

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
            elif ch == "<":
                tmp = self.possible_heredoc()
                out.append(tmp)
                words.add_raw_string(tmp)
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
                        words.add_raw_string(ch)
                        out.append(ch)
                    ch = sc.next()
                    if ch == _EOF:
                        break
                    words.add_raw_string(ch)
                else:
                    words.add_char(ch)
                out.append(ch)
        if stop != _EOF:
            raise ExpandError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.get()

    def possible_heredoc(self) -> str:
        """``<<`` and the blanks after it stay with the word that follows (``RUN << EOF``)."""
        sc = self.sc
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        out = ["<<"]
        while sc.peek() in _HEREDOC_BLANKS and sc.peek() != _EOF:
            out.append(sc.next())
        return "".join(out)

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
            if not out and ch.isdecimal():
                while sc.peek() != _EOF and sc.peek().isdecimal():
                    out.append(sc.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            out.append(sc.next())
        return "".join(out)

    def _word_until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            return self.process_stop_on(stop, raw_escapes)[0]
        except ExpandError:
            if self.sc.peek() == _EOF:
                raise ExpandError(f"syntax error: missing '{missing}'" if missing == "}" else
                                  "syntax error: missing '/' in ${}") from None
            raise

    def dollar(self) -> str:
        return self.charge(self._dollar())

    def _dollar(self) -> str:
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
            if ch in ("#", "%"):
                # ${VAR:#x} looks like bash but is none of its forms: BuildKit refuses it
                raise ExpandError(f"unsupported modifier ({chs}) in substitution")
        if ch == "/" and not null_is_unset:
            return self._replace(name)
        if ch == _EOF and not null_is_unset:
            raise ExpandError("syntax error: missing '}'")
        if ch not in ("+", "-", "?", "#", "%") and not null_is_unset:
            raise ExpandError(f"unsupported modifier ({chs}) in substitution")
        word = self._word_until("}", ch in "#%", "}")
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
        if ch in ("#", "%"):
            greedy = word[:1] == ch
            if greedy:
                word = word[1:]
            try:
                return trim_suffix(word, value, greedy) if ch == "%" else trim_prefix(word, value, greedy)
            except PatternError as e:
                raise ExpandError(str(e)) from None
        raise ExpandError(f"unsupported modifier ({chs}) in substitution")

    def _replace(self, name: str) -> str:
        """``${VAR/pattern/repl}``, ``${VAR//pattern/repl}``. The replacement is literal text: BuildKit's
        replace-all reads ``$1`` in it as a regex group (Go's ReplaceAllString), which its
        documentation does not say and its first-match form does not do."""
        sc = self.sc
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        pattern = self._word_until("/", True, "/")
        repl = self._word_until("}", True, "}")
        value, found = self.get_env(name)
        if self.skip_unset and not found:
            return "${%s/%s/%s}" % (name, pattern, repl)
        try:
            return Pattern(pattern).replace(value, repl, replace_all, limit=max(self.budget, 0))
        except PatternError as e:
            if "over" in str(e):
                raise ExpandError(f"variables expand to more than {MAX_GROWTH} characters in one word") from None
            raise ExpandError(str(e)) from None


class Lexer:
    """Expands variables in one word (``process_word``) or splits into words (``process_words``)."""

    def __init__(self, escape: str = "\\"):
        self.escape = escape

    def process(self, text: str, env: Mapping[str, str], *, raw_quotes: bool = False, raw_escapes: bool = False,
                skip_unset: bool = False, skip_quotes: bool = False) -> Expansion:
        """``skip_quotes``: quotes are plain characters (heredoc bodies); ``raw_escapes``: escape
        characters are kept; ``skip_unset``: unset variables stay as written."""
        text = gostrings.valid_text(text)  # Go's scanner reads a stray byte as U+FFFD
        w = _Word(self, text, env, raw_quotes, raw_escapes, skip_unset, skip_quotes)
        try:
            word, words = w.process_stop_on(_EOF, raw_escapes)
        except ExpandError as e:
            shown = text if len(text) <= 200 else text[:200] + "..."
            raise ExpandError(f"failed to process {shown!r}: {e}") from None
        return Expansion(word, words, w.used)

    def process_word(self, text: str, env: Mapping[str, str]) -> str:
        return self.process(text, env).word

    def process_words(self, text: str, env: Mapping[str, str]) -> list[str]:
        return self.process(text, env).words
