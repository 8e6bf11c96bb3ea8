"""What COPY and ADD name: sources matched in the build context, a stage or an image
(``*``, ``?``, ``[...]`` per path component, as Go's ``filepath.Match``; symlinks followed inside
their root only), and the owners and modes of ``--chown``/``--chmod``."""

from __future__ import annotations

import os
import re
import stat

from .context import ContextFS, ImageFS, SourceFS, join, normalize
from .dockerignore import glob_regex, has_magic


# users


def _lookup(fs: ImageFS | None, path: str, name: str, field_no: int) -> list[str] | None:
    data = fs.read(path) if fs is not None else None
    if not data:
        return None
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) > field_no and parts[0] == name:
            return parts
    return None


def user_ids(spec: str, fs: ImageFS | None, strict: bool = True) -> tuple[int, int]:
    """``user[:group]`` (names or numbers) → (uid, gid), looked up in the image being built, as
    BuildKit does for ``--chown`` and WORKDIR: a user named alone brings its primary group from
    /etc/passwd, a number alone is also the group. ``strict``: a name not found is an error (else
    0, BuildKit's choice everywhere; docker's classic builder refuses it for --chown)."""
    user, sep, group = spec.partition(":")
    if not user:
        raise ValueError(f"invalid user {spec!r}")
    if user.isdigit():
        uid = gid = int(user)
    else:
        ent = _lookup(fs, "etc/passwd", user, 3)
        if ent is None:
            if strict:
                raise ValueError(f"unable to find user {user}: no matching entries in passwd file")
            uid = gid = 0
        else:
            uid, gid = int(ent[2]), int(ent[3])
    if not sep:
        return uid, gid
    if group.isdigit():
        gid = int(group)
    else:
        ent = _lookup(fs, "etc/group", group, 2)
        if ent is None:
            if strict:
                raise ValueError(f"unable to find group {group}: no matching entries in group file")
            gid = 0
        else:
            gid = int(ent[2])
    return uid, gid


class Chmod:
    """``--chmod``: octal (``0755``; also the mode of the parent directories it creates, as in
    BuildKit) or symbolic as chmod(1) with no umask (``u+x``, ``go-w``, ``a+X``, ``u=rw,g=r``)."""

    _CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)")
    _WHO = {"u": 0o4700, "g": 0o2070, "o": 0o0007}

    def __init__(self, spec: str):
        self.spec = spec
        self.octal: int | None = None
        self.clauses: list[tuple[int, list[tuple[str, str]]]] = []
        bad = ValueError(f"invalid chmod parameter: '{spec}'. it should be octal string and between 0 and 07777")
        if spec[:1].isdigit():
            if not re.fullmatch(r"[0-7]+", spec) or int(spec, 8) > 0o7777:
                raise bad
            self.octal = int(spec, 8)
            return
        for clause in spec.split(","):
            m = self._CLAUSE.fullmatch(clause)
            if not m:
                raise ValueError(f"invalid chmod parameter: '{spec}': invalid syntax")
            who = 0
            for w in m.group(1) or "a":
                who |= 0o7777 if w == "a" else self._WHO[w]
            ops = re.findall(r"([-+=])([ugo]|[rwxXst]*)", m.group(2))
            self.clauses.append((who, ops))

    def apply(self, mode: int, is_dir: bool) -> int:
        if self.octal is not None:
            return self.octal
        orig = mode
        for who, ops in self.clauses:
            for op, perms in ops:
                bits = 0
                if perms in ("u", "g", "o"):  # copy another class's bits
                    src = (mode >> {"u": 6, "g": 3, "o": 0}[perms]) & 7
                    bits = (src << 6 | src << 3 | src) & who & 0o777
                else:
                    for p in perms:
                        if p == "r":
                            bits |= 0o444
                        elif p == "w":
                            bits |= 0o222
                        elif p == "x" or (p == "X" and (is_dir or orig & 0o111 or op == "-")):
                            bits |= 0o111
                        elif p == "s":
                            bits |= 0o6000
                        elif p == "t":
                            bits |= 0o1000
                    bits &= who
                if op == "+":
                    mode |= bits
                elif op == "-":
                    mode &= ~bits
                else:  # "=": the class's bits are replaced (the sticky bit only by "t")
                    mode = (mode & ~(who & 0o6777)) | bits
        return mode & 0o7777


def parse_chmod(spec: str) -> Chmod:
    return Chmod(spec)


def _in_scope(fs: SourceFS, base: str) -> str:
    """``base`` with its symlinks followed inside the root, when it is one: so that nothing below a
    symlinked directory is ever reached through the host's idea of the link (``ctx/link -> /etc``)."""
    if not base:
        return base
    st = fs.lstat(base)
    return fs.resolve(base) if st is not None and stat.S_ISLNK(st.st_mode) else base


def glob(fs: SourceFS, pattern: str) -> list[str]:
    """Paths of ``fs`` matching ``pattern`` (relative, cleaned), component by component; a
    symlinked directory on the way is followed inside the root."""
    parts = pattern.split("/") if pattern else []
    found = [""]
    for comp in parts:
        nxt = []
        bases = [_in_scope(fs, b) for b in found]
        if has_magic(comp):
            rx = re.compile("^" + glob_regex(comp) + "$", re.DOTALL)
            for base in bases:
                st = fs.lstat(base)
                if st is None or not stat.S_ISDIR(st.st_mode):
                    continue
                nxt.extend(join(base, n) for n in fs.listdir(base) if rx.match(n))
        else:
            for base in bases:
                st = fs.lstat(base)
                if base and (st is None or not stat.S_ISDIR(st.st_mode)):
                    continue
                child = join(base, comp)
                if fs.lstat(child) is not None:
                    nxt.append(child)
        found = nxt
        if not found:
            break
    return sorted(found)


class Source:
    __slots__ = ("given", "rel", "st")

    def __init__(self, given: str, rel: str, st: os.stat_result):
        self.given = given  # the matched path (its basename names the copy)
        self.rel = rel  # after following a top-level symlink
        self.st = st


def resolve_sources(fs: SourceFS, sources: list[str], what: str) -> list[Source]:
    out: list[Source] = []
    for src in sources:
        try:
            rel = normalize(src)
        except ValueError:
            raise ValueError(f"forbidden path outside the {fs.name}: {src}") from None
        matches = glob(fs, rel)
        if not matches and has_magic(rel):
            raise ValueError(f"no source files were specified: no file in the {fs.name} matches {src!r}")
        where = f"{fs.name} or excluded by .dockerignore" if isinstance(fs, ContextFS) else fs.name
        if not matches:
            raise ValueError(f"file not found in {where}: stat {src}: file does not exist")
        for m in matches:
            st = fs.lstat(m)
            real = m
            if st is not None and stat.S_ISLNK(st.st_mode):
                real = fs.resolve(m)
                st = fs.lstat(real)
            if st is None:
                raise ValueError(f"file not found in {where}: stat {src}: file does not exist")
            out.append(Source(m, real, st))
    return out
