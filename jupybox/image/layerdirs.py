"""``layers/``: each layer unpacked once, by diff_id, for use as an overlay lower dir.

::

    layers/<diff-id hex>/   the unpacked layer (made in tmp/, committed by one rename)
    layers/l/<short>        -> ../<diff-id hex>: short paths for overlay's one-page mount options

Making or removing a layer directory bumps the store's generation: a sandbox prepared ahead of
time with the old directories mounted must not be used (``rmi`` then ``load`` makes new
directories at the same paths). This module is the one place that does either.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Callable

from ..errors import StoreError
from . import digest as dg
from . import scratch
from .blobs import Blobs

SHORT_LINK_LENGTHS = (12, 16, 24, 32, 64)
HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def _layer():
    """The layer module (tarfile, decompressors, threads): imported when a layer is unpacked, so
    that `jupybox run` of an unpacked image does not pay ~6 ms for it."""
    from . import layer

    return layer


class LayerDirs:
    def __init__(self, root: Path, tmp: Path, blobs: Blobs, bump: Callable[[], None]):
        self.root = root
        self.links = root / "l"
        self.tmp = tmp
        self._blobs = blobs
        self._bump = bump

    def path(self, diff_id: str) -> Path:
        return self.root / dg.hex_of(diff_id)

    def has(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    def names(self) -> list[str]:
        """The hex names of the unpacked layers."""
        try:
            return [n for n in os.listdir(self.root) if HEX_RE.match(n)]
        except FileNotFoundError:
            return []

    # -- making ---------------------------------------------------------------------------------
    def ensure(self, desc: dict, diff_id: str | None):
        """Unpack the layer blob ``desc`` unless layers/<diff_id> exists; returns a ``LayerInfo``."""
        bdigest = desc.get("digest") if isinstance(desc, dict) else None
        if not dg.is_digest(bdigest):
            raise StoreError(f"invalid layer descriptor: {desc!r}")
        if diff_id is not None:
            dg.validate(diff_id)
            if self.has(diff_id):
                self.short_link(dg.hex_of(diff_id))
                return _layer().LayerInfo(diff_id, bdigest, int(desc.get("size", 0)), -1, "", 0,
                                          str(self.path(diff_id)), True)
        blob = self._blobs.path(bdigest)
        if not blob.is_file():
            raise StoreError(f"layer blob {bdigest} is missing from the store (pull the image again)")
        size = desc.get("size")
        return self.unpack(str(blob), expected_diff_id=diff_id, expected_digest=bdigest,
                           expected_size=int(size) if size is not None else None)

    def unpack(self, src, **kw):
        """Unpack the layer ``src`` (a path or a binary file) as layers/<its diff_id>; keyword
        arguments as :func:`.layer.unpack_layer` (``tee``, ``expected_*``)."""
        info = _layer().unpack_layer(src, lambda i: str(self.root / dg.hex_of(i.diff_id)), tmp_dir=self.tmp, **kw)
        if not info.existed:
            self._bump()
        self.short_link(dg.hex_of(info.diff_id))
        return info

    def adopt(self, path: str, diff_id: str) -> None:
        """Make the directory ``path`` (filled under tmp/) the layer ``diff_id``, by one rename; if
        another process committed it first, ``path`` is removed."""
        try:
            os.rename(path, self.path(diff_id))
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            scratch.remove_tree(path)
            return
        self._bump()

    def short_link(self, hexd: str, create: bool = True) -> str | None:
        """The short name in layers/l/ for layer ``hexd`` (created if missing)."""
        target = "../" + hexd
        for n in SHORT_LINK_LENGTHS:
            name = hexd[:n]
            p = self.links / name
            try:
                cur = os.readlink(p)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.symlink(target, p)
                    return name
                except FileExistsError:
                    cur = os.readlink(p)
            except OSError as e:
                if e.errno == errno.EINVAL:  # not a symlink: occupied by junk
                    continue
                raise
            if cur == target:
                return name
        raise StoreError(f"no short link name available for layer {hexd}")

    def lower_dirs(self, layers: list[dict], diff_ids: list[str], relative: bool = False) -> list[str]:
        """Short paths of the layers (unpacked first where missing), bottom → top."""
        out = []
        for desc, diff in zip(layers, diff_ids):
            if not self.has(diff):
                self.ensure(desc, diff)
            short = self.short_link(dg.hex_of(diff))
            out.append(f"l/{short}" if relative else str(self.links / short))
        return out

    # -- removing -------------------------------------------------------------------------------
    def remove(self, hexd: str) -> None:
        p = self.root / hexd
        if p.is_dir() and not p.is_symlink():
            # rename first: the removal of a big tree is not atomic, the rename is (and a removal
            # killed halfway leaves a trash entry of tmp/ that the next cleanup finishes)
            trash = Path(self.tmp) / scratch.name("trash")
            try:
                os.rename(p, trash)
            except OSError:
                trash = p
            self._bump()
            scratch.remove_tree(trash)
        for n in SHORT_LINK_LENGTHS:
            lp = self.links / hexd[:n]
            try:
                if os.readlink(lp) == "../" + hexd:
                    os.unlink(lp)
            except OSError:
                pass

    def clean_links(self, repair: bool) -> tuple[list[str], int]:
        """Short links that point nowhere: (one line each, how many removed)."""
        problems, n = [], 0
        try:
            names = os.listdir(self.links)
        except FileNotFoundError:
            return problems, 0
        for name in names:
            p = self.links / name
            try:
                target = os.readlink(p)
            except OSError:
                target = None
            ok = target is not None and target.startswith("../") and HEX_RE.match(target[3:]) \
                and target[3:].startswith(name) and (self.root / target[3:]).is_dir()
            if not ok:
                problems.append(f"dangling short link layers/l/{name}")
                if repair:
                    try:
                        if p.is_dir() and not p.is_symlink():
                            scratch.remove_tree(p)
                        else:
                            os.unlink(p)
                    except FileNotFoundError:
                        pass
                    n += 1
        return problems, n
