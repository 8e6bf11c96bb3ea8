"""What the parser makes: one :class:`Node` per instruction, with its heredocs, in a :class:`Dockerfile`."""

from __future__ import annotations

import re

from ..errors import BuildError

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

    def __eq__(self, other) -> bool:
        return isinstance(other, Heredoc) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return (f"Heredoc({self.name!r}, {self.content!r}, expand={self.expand}, chomp={self.chomp}, "
                f"fd={self.fd})")


class Node:
    """One instruction as written. ``args`` are BuildKit's arguments of the node (its ``Next``
    chain: for ENV/LABEL ``key, value, "="|""`` triples, the separator telling the ``K=V`` form from
    the legacy ``K V``); ``kv`` holds ENV/LABEL pairs (values still quoted: expansion removes the
    quotes); ``sub`` is the instruction of an ONBUILD."""

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
        self.sub = sub
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
