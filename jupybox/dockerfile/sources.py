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


def parse_chown(spec: str, fs: ImageFS | None) -> tuple[int, int]:
    """``user[:group]`` (names or numbers) → (uid, gid), looked up in the image being built."""
    user, sep, group = spec.partition(":")
    if not user:
        raise ValueError(f"invalid --chown {spec!r}")
    if user.isdigit():
        uid = int(user)
    else:
        ent = _lookup(fs, "etc/passwd", user, 3)
        if ent is None:
            raise ValueError(f"unable to find user {user}: no matching entries in passwd file")
        uid = int(ent[2])
    if not sep:
        return uid, uid
    if group.isdigit():
        gid = int(group)
    else:
        ent = _lookup(fs, "etc/group", group, 2)
        if ent is None:
            raise ValueError(f"unable to find group {group}: no matching entries in group file")
        gid = int(ent[2])
    return uid, gid


def parse_chmod(spec: str) -> int:
    if not re.fullmatch(r"[0-7]{1,4}", spec or ""):
        raise ValueError(f"invalid --chmod {spec!r}: an octal mode is expected (e.g. 0755)")
    return int(spec, 8)




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
