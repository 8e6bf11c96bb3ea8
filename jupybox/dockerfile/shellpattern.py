"""The patterns of ``${VAR#pat}``, ``${VAR%%pat}``, ``${VAR/pat/repl}``: ``*``, ``?`` and ``\\``
escapes (no brackets), matched as BuildKit matches them (``convertShellPatternToRegex``: Go's
RE2, where ``*`` and ``?`` never match a newline and the leftmost match wins).

Why not Python's ``re``: it backtracks, and ``${V#*a*a*a*a*b}`` on a long value of ``a`` takes
polynomial time of a high degree; a Dockerfile must not be able to hang the build. The pattern
runs here as a bit-parallel automaton (one bit per pattern position, an int holding all of
them), linear in the value. With greedy stars the leftmost match is also the longest one from
its start, and with lazy stars the shortest (the regex and this agree on every pattern: see
tests/dockerfile/test_expand_ignore.py).
"""

from __future__ import annotations

from collections.abc import Iterator


class PatternError(ValueError):
    pass


def _tokens(pattern: str) -> list[str]:
    """``*`` (any run), ``?`` (one character), or a literal character prefixed with ``=``."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not out or out[-1] != "*":  # "**" is "*"
                out.append("*")
        elif ch == "?":
            out.append("?")
        elif ch == "\\":
            if i < n and pattern[i] in "}/":
                continue  # the escape of ${...}'s own delimiters is not part of the pattern
            if i >= n or pattern[i] not in "*?\\":
                bad = pattern[i] if i < n else ""
                raise PatternError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{bad}'")
            out.append("=" + pattern[i])
            i += 1
        else:
            out.append("=" + ch)
    return out


class _Automaton:
    def __init__(self, tokens: list[str]):
        self.accept = 1 << len(tokens)
        self.literal: dict[str, int] = {}
        self.any = 0  # bit i+1: token i is "?"
        self.stay = 0  # bit i+1: token i is "*" (it goes on consuming)
        self.star = 0  # bit i: token i is "*" (it may match nothing)
        for i, t in enumerate(tokens):
            if t == "?":
                self.any |= 1 << (i + 1)
            elif t == "*":
                self.stay |= 1 << (i + 1)
                self.star |= 1 << i
            else:
                self.literal[t[1]] = self.literal.get(t[1], 0) | 1 << (i + 1)
        self.start = self.closure(1)

    def closure(self, s: int) -> int:
        return s | ((s & self.star) << 1)  # no two stars are adjacent: one step is the fixpoint

    def step(self, s: int, ch: str) -> int:
        moved = (s << 1) & self.literal.get(ch, 0)
        if ch != "\n":
            moved |= ((s << 1) & self.any) | (s & self.stay)
        return self.closure(moved)

    def ends(self, value: str, start: int) -> Iterator[int]:
        """Every end of a match of the whole pattern beginning at ``start``, in order."""
        s = self.start
        j = start
        n = len(value)
        while True:
            if s & self.accept:
                yield j
            if j == n or not s:
                return
            s = self.step(s, value[j])
            j += 1


class Pattern:
    def __init__(self, pattern: str):
        tokens = _tokens(pattern)
        self.forward = _Automaton(tokens)
        self.backward = _Automaton(tokens[::-1])

    def prefix(self, value: str, greedy: bool) -> int | None:
        """The length of the shortest (longest) prefix of ``value`` the pattern matches."""
        best = None
        for end in self.forward.ends(value, 0):
            if not greedy:
                return end
            best = end
        return best

    def starts(self, value: str) -> bytearray:
        """``starts[k]``: a match begins at ``k`` (one pass from the end, the reversed pattern)."""
        a = self.backward
        out = bytearray(len(value) + 1)
        s = a.start
        for k in range(len(value), -1, -1):
            if s & a.accept:
                out[k] = 1
            if k:
                s = a.step(s, value[k - 1]) | a.start
        return out

    def replace(self, value: str, repl: str, replace_all: bool, limit: int | None = None) -> str:
        """Go's ``ReplaceAllString`` (or the first match only); ``limit``: raise PatternError when
        the result would be longer."""
        starts = self.starts(value)
        n = len(value)
        out: list[str] = []
        size = 0
        last_end = 0
        pos = 0
        while pos <= n:
            k = starts.find(1, pos)
            if k < 0:
                break
            end = None
            for end in self.forward.ends(value, k):
                pass
            out.append(value[last_end:k])
            size += k - last_end
            if end > last_end or k == 0:
                out.append(repl)
                size += len(repl)
                if limit is not None and size > limit:
                    raise PatternError(f"the replacement makes a word over {limit} characters")
            last_end = end
            if not replace_all:
                break
            pos = pos + 1 if pos + 1 > end else end
        out.append(value[last_end:])
        return "".join(out)


def trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    end = Pattern(pattern).prefix(value, greedy)
    return value if end is None else value[end:]


def _reverse(pattern: str) -> str:
    """The pattern read backwards, escapes kept with what they escape (``a\\*c`` → ``c\\*a``)."""
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


def trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return trim_prefix(_reverse(pattern), value[::-1], greedy)[::-1]
