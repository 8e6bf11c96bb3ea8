""".dockerignore: Docker's pattern rules (``moby/patternmatcher`` and buildkit's ``dockerignore.ReadAll``).

* one pattern a line; lines starting with ``#`` are comments; blank lines are skipped; surrounding
  whitespace is removed; a UTF-8 BOM on the first line is ignored;
* patterns are cleaned like Go's ``filepath.Clean`` and a leading ``/`` is dropped (``/a`` = ``a``);
* ``*`` matches any run of non-``/`` characters, ``?`` one non-``/`` character, ``[a-z]``/``[^a]``
  a class, ``\\`` escapes; ``**`` matches any number of directories (also none): ``**/x``, ``a/**``;
* a pattern matching a directory excludes everything below it;
* ``!pattern`` re-includes what an earlier pattern excluded; the last matching pattern wins;
* the Dockerfile and the .dockerignore are still read by the builder, but COPY/ADD cannot see
  them when they are excluded.

:class:`Matcher` gives, for a path and its parent's result (walking top-down, as
``MatchesUsingParentResults``), whether the path is excluded.
"""

from __future__ import annotations

import os
import re


def clean(path: str) -> str:
    """Go's filepath.Clean for '/'-separated paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    s = "/".join(out)
    if rooted:
        return "/" + s
    return s or "."


def read_patterns(text: str) -> list[str]:
    if text.startswith("\ufeff"):
        text = text[1:]
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        p = line.strip()
        if not p:
            continue
        invert = p.startswith("!")
        if invert:
            p = p[1:].strip()
        if p:
            p = clean(p)
            if len(p) > 1 and p.startswith("/"):
                p = p[1:]
        out.append("!" + p if invert else p)
    return out


def read_dockerignore(context_dir: str | os.PathLike | None, dockerfile: str | None = None) -> list[str]:
    """Patterns of ``<Dockerfile>.dockerignore`` (next to the Dockerfile, BuildKit) or
    ``CONTEXT/.dockerignore``; [] when neither exists."""
    candidates = []
    if dockerfile:
        candidates.append(dockerfile + ".dockerignore")
    if context_dir is not None:
        candidates.append(os.path.join(context_dir, ".dockerignore"))
    for c in candidates:
        try:
            with open(c, encoding="utf-8", errors="surrogateescape") as f:
                return read_patterns(f.read())
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            continue
    return []


_ESCAPE = set(".+()|{}$")


def glob_regex(pattern: str) -> str:
    """Go ``filepath.Match`` syntax (one path, ``/`` separated) as a regex body (no anchors)."""
    out = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append("\\\\")
        elif ch == "[":
            j = i
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                raise ValueError("syntax error in pattern")
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\":
                    j += 1
                j += 1
            if j >= n:
                raise ValueError("syntax error in pattern")
            body = pattern[i:j]
            i = j + 1
            neg = body.startswith("^")
            if neg:
                body = body[1:]
            cls = []
            k = 0
            while k < len(body):
                c = body[k]
                if c == "\\" and k + 1 < len(body):
                    cls.append(re.escape(body[k + 1]))
                    k += 2
                    continue
                if c == "-" and cls and k + 1 < len(body):
                    cls.append("-")
                elif c in "]^\\[":
                    cls.append("\\" + c)
                else:
                    cls.append(c)
                k += 1
            out.append("[" + ("^" if neg else "") + "".join(cls) + "]")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[\\")


class Pattern:
    __slots__ = ("text", "exclusion", "kind", "regex", "dirs")

    def __init__(self, text: str, exclusion: bool):
        self.text = text
        self.exclusion = exclusion
        self.dirs = text.split("/")
        self.kind, self.regex = self._compile()

    def _compile(self):
        p = self.text
        reg = ["^"]
        kind = "exact"
        i = 0
        n = len(p)
        idx = 0
        in_class = False
        while i < n:
            ch = p[i]
            i += 1
            if ch == "*":
                if i < n and p[i] == "*":
                    i += 1
                    if i < n and p[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            reg.append(".*")
                            kind = "regexp"
                    else:
                        reg.append("(.*/)?")
                        kind = "regexp"
                    if idx == 0:
                        kind = "suffix"
                else:
                    reg.append("[^/]*")
                    kind = "regexp"
            elif ch == "?":
                reg.append("[^/]")
                kind = "regexp"
            elif ch in _ESCAPE:
                reg.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    reg.append("\\" + p[i])
                    i += 1
                    kind = "regexp"
                else:
                    reg.append("\\\\")
            elif ch in "[]":
                reg.append(ch)
                in_class = ch == "["
                kind = "regexp"
            else:
                reg.append(re.escape(ch) if ch == "^" and not in_class else ch)
            idx += 1
        if kind == "regexp":
            reg.append("$")
            try:
                return kind, re.compile("".join(reg), re.DOTALL)
            except re.error as e:
                raise ValueError(f"bad pattern {self.text!r}: {e}") from None
        return kind, None

    def match(self, path: str) -> bool:
        k = self.kind
        if k == "exact":
            return path == self.text
        if k == "prefix":
            return path.startswith(self.text[:-2])
        if k == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        return bool(self.regex.match(path))


class Matcher:
    def __init__(self, patterns: list[str]):
        self.patterns: list[Pattern] = []
        for p in patterns:
            p = p.strip()
            if not p:
                continue
            p = clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                p = p[1:]
            try:
                glob_regex(p)
            except ValueError:
                raise ValueError(f"syntax error in pattern {p!r}") from None
            self.patterns.append(Pattern(p, exclusion))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, path: str, parent: list[bool] | None) -> tuple[bool, list[bool]]:
        """(excluded, per-pattern results to pass to the children). ``parent`` None = unknown:
        the parents are checked (MatchesOrParentMatches)."""
        matched = False
        info = []
        for i, pat in enumerate(self.patterns):
            m = parent[i] if parent else False
            if not m:
                if pat.exclusion != matched:
                    info.append(False)
                    continue
                m = pat.match(path)
                if not m and parent is None and "/" in path:
                    parts = path.split("/")[:-1]
                    for j in range(len(parts)):
                        if pat.match("/".join(parts[: j + 1])):
                            m = True
                            break
            info.append(m)
            if m:
                matched = not pat.exclusion
        return matched, info

    def excluded(self, path: str) -> bool:
        return self.match(path, None)[0]

    def may_include_below(self, dirpath: str) -> bool:
        """Whether an exclusion pattern could re-include something under the excluded ``dirpath``."""
        if not self.exclusions:
            return False
        dparts = dirpath.split("/")
        for pat in self.patterns:
            if not pat.exclusion:
                continue
            if "**" in pat.text:
                return True
            if len(pat.dirs) <= len(dparts):
                continue
            ok = True
            for pd, dd in zip(pat.dirs, dparts):
                if has_magic(pd):
                    if not re.match("^" + glob_regex(pd) + "$", dd, re.DOTALL):
                        ok = False
                        break
                elif pd != dd:
                    ok = False
                    break
            if ok:
                return True
        return False
