"""What COPY and ADD read from: the build context (filtered by .dockerignore) or an image.

Both are :class:`SourceFS`: ``lstat``, ``listdir``, ``host_path``, ``readlink`` on paths relative
to their root (``""`` is the root, no leading ``/``). Nothing is walked up front: a
``COPY app.py /`` in a huge context stats one file; a ``COPY . /app`` walks the tree once.

:class:`ImageFS` is the merged view of an image's unpacked layers (bottom → top), as overlayfs
would show it: an upper entry hides the lower ones, a 0/0 character device is a whiteout, a
directory with ``trusted.overlay.opaque=y`` hides the lower directories' children.
:meth:`SourceFS.resolve` follows symlinks *inside* the root (like securejoin): a link can never
lead outside it.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from .dockerignore import Matcher

_MAX_LINKS = 255
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise
    return False


def join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def normalize(path: str) -> str:
    """An absolute or relative path → relative to the root, cleaned; '' for the root.
    Raises ValueError for a path that climbs above the root."""
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise ValueError(path)
            parts.pop()
            continue
        parts.append(p)
    return "/".join(parts)


class SourceFS:
    name = "source"

    def lstat(self, rel: str) -> os.stat_result | None:
        raise NotImplementedError

    def listdir(self, rel: str) -> list[str]:
        raise NotImplementedError

    def host_path(self, rel: str) -> str:
        raise NotImplementedError

    def readlink(self, rel: str) -> str:
        return os.readlink(self.host_path(rel))

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """``path`` with every symlink followed inside the root (``..`` never climbs out)."""
        todo = [p for p in path.split("/") if p not in ("", ".")]
        done: list[str] = []
        links = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            cand = "/".join(done + [part])
            st = self.lstat(cand)
            if st is not None and stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
                target = self.readlink(cand)
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                continue
            done.append(part)
        return "/".join(done)

    def walk(self, rel: str):
        """(relpath, stat) of everything below the directory ``rel``, sorted, parents first."""
        for name in self.listdir(rel):
            child = join(rel, name)
            st = self.lstat(child)
            if st is None:
                continue
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                yield from self.walk(child)


class ContextFS(SourceFS):
    """A directory filtered by .dockerignore patterns."""

    name = "build context"

    def __init__(self, root: str | os.PathLike | None, patterns: list[str] | None = None):
        self.root = os.path.abspath(os.fspath(root)) if root is not None else None
        self.matcher = Matcher(patterns or [])
        self._match: dict[str, tuple[bool, list[bool]]] = {}

    def _state(self, rel: str) -> tuple[bool, list[bool]]:
        got = self._match.get(rel)
        if got is None:
            parent = posixpath.dirname(rel)
            pinfo = self._state(parent)[1] if parent else []
            got = self.matcher.match(rel, pinfo)
            self._match[rel] = got
        return got

    def excluded(self, rel: str) -> bool:
        if not rel or not self.matcher:
            return False
        return self._state(rel)[0]

    def host_path(self, rel: str) -> str:
        if self.root is None:
            raise FileNotFoundError(rel)
        return os.path.join(self.root, rel) if rel else self.root

    def lstat(self, rel: str) -> os.stat_result | None:
        if self.root is None:
            return None
        try:
            st = os.lstat(self.host_path(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if rel and self.matcher:
            if self.excluded(rel):
                if not (stat.S_ISDIR(st.st_mode) and self.matcher.may_include_below(rel)):
                    return None
        return st

    def listdir(self, rel: str) -> list[str]:
        if self.root is None:
            return []
        try:
            names = sorted(os.listdir(self.host_path(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        if not self.matcher:
            return names
        out = []
        for n in names:
            child = join(rel, n)
            if not self.excluded(child):
                out.append(n)
                continue
            try:
                st = os.lstat(self.host_path(child))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and self.matcher.may_include_below(child):
                out.append(n)
        return out


class ImageFS(SourceFS):
    """The merged view of unpacked layer directories (``lowers`` bottom → top)."""

    name = "image"

    def __init__(self, lowers: list[str], label: str = "image"):
        self.layers = list(reversed([os.fspath(x) for x in lowers]))  # top → bottom
        self.name = label
        self._dirs: dict[str, list[str]] = {"": self.layers}
        self._found: dict[str, tuple[str, os.stat_result] | None] = {}

    def _visible(self, rel: str) -> list[str]:
        """The layers whose copy of directory ``rel`` contributes entries (top → bottom)."""
        got = self._dirs.get(rel)
        if got is not None:
            return got
        parent = posixpath.dirname(rel)
        res: list[str] = []
        for layer in self._visible(parent):
            p = layer + "/" + rel
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or a file hides this and every lower copy
            res.append(layer)
            if is_opaque(p):
                break
        self._dirs[rel] = res
        return res

    def _find(self, rel: str) -> tuple[str, os.stat_result] | None:
        if rel in self._found:
            return self._found[rel]
        res = None
        if rel == "":
            top = self.layers[0] if self.layers else None
            res = (top, os.lstat(top)) if top else None
        else:
            parent, _, name = rel.rpartition("/")
            for layer in self._visible(parent):
                p = layer + "/" + rel
                try:
                    st = os.lstat(p)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if not is_whiteout(st):
                    res = (p, st)
                break
        self._found[rel] = res
        return res

    def lstat(self, rel: str) -> os.stat_result | None:
        f = self._find(rel)
        return f[1] if f else None

    def host_path(self, rel: str) -> str:
        f = self._find(rel)
        if f is None:
            raise FileNotFoundError(rel)
        return f[0]

    def listdir(self, rel: str) -> list[str]:
        seen: set[str] = set()
        out = []
        for layer in self._visible(rel):
            try:
                names = os.listdir(layer + "/" + rel if rel else layer)
            except OSError:
                continue
            for n in names:
                if n in seen:
                    continue
                seen.add(n)
                st = os.lstat(layer + "/" + join(rel, n))
                if not is_whiteout(st):
                    out.append(n)
        return sorted(out)

    def read(self, rel: str, limit: int = 1 << 20) -> bytes | None:
        """A small file's content (e.g. etc/passwd, symlinks followed), or None."""
        try:
            r = self.resolve(rel)
        except OSError:
            return None
        st = self.lstat(r)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        with open(self.host_path(r), "rb") as f:
            return f.read(limit)


class EmptyFS(SourceFS):
    name = "scratch"

    def lstat(self, rel):
        return None

    def listdir(self, rel):
        return []

    def host_path(self, rel):
        raise FileNotFoundError(rel)
