"""``images/index.json``: the store's names, one OCI index entry per name.

Every entry carries ``org.opencontainers.image.ref.name`` = the tag (the OCI layout convention,
so ``skopeo inspect oci:<root>/images:<tag>`` works when the tag is unique in the store) and
``io.jupybox.image.name`` = the full normalized reference (``docker.io/library/busybox:latest``).
An image that loses its last name while a container uses it stays as an entry without
annotations (dangling, ``<none>:<none>``).

Every write replaces the file atomically (:func:`.blobs.atomic_write`) and then bumps the store's
generation, so whatever was made ahead of time for the old names is thrown away.

Removing never needs free space: ``images/.reserve`` holds preallocated blocks (at least twice
the index's size) that a write which only removes entries gives back to the file system when it
meets ENOSPC; the reserve is made again once there is room.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import StoreError
from . import mediatypes as mt
from .blobs import atomic_write
from .nospace import is_no_space
from .reference import parse_reference

RESERVE_MIN = 64 << 10
EMPTY_INDEX_MAX = 128  # bytes: an index this small names nothing, so nothing can be removed


def empty_index() -> dict:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}


# an untagged entry a process made for its own use (a build's image for a RUN step), as
# "PID:START" (its start time in /proc/PID/stat): garbage once that process is gone
OWNER = "io.jupybox.owner"


def entry_name(entry: dict) -> str | None:
    return (entry.get("annotations") or {}).get(mt.ANNOTATION_NAME)


def set_name(idx: dict, name: str, desc: dict) -> None:
    """Point ``name`` (full normalized) at the manifest ``desc``; a previous holder that is left
    without any entry is kept as a dangling (untagged) entry."""
    entries = idx["manifests"]
    old = [e for e in entries if entry_name(e) == name]
    for e in old:
        entries.remove(e)
    for e in old:
        if e["digest"] != desc["digest"] and not any(x["digest"] == e["digest"] for x in entries):
            entries.append({k: v for k, v in e.items() if k != "annotations"})
    ref = parse_reference(name, default_tag=None)
    ann = {mt.ANNOTATION_NAME: name}
    if ref.tag is not None and ref.digest is None:
        ann[mt.ANNOTATION_REF_NAME] = ref.tag
    new = {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"], "annotations": ann}
    for i, e in enumerate(entries):  # take over the image's dangling entry, if any
        if e["digest"] == desc["digest"] and entry_name(e) is None:
            entries[i] = new
            return
    entries.append(new)


class IndexFile:
    def __init__(self, path: Path, tmp: Path, lock: Callable, bump: Callable[[], None]):
        self.path = path
        self.tmp = tmp
        self.reserve = path.parent / ".reserve"
        self._lock = lock  # the store's index lock (a context manager factory)
        self._bump = bump

    def read(self) -> dict:
        try:
            idx = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return empty_index()
        except ValueError:
            raise StoreError(f"{self.path} is not valid JSON; run check(repair=True)") from None
        if not isinstance(idx, dict) or not isinstance(idx.get("manifests", []), list):
            raise StoreError(f"{self.path} is not an OCI image index")
        idx.setdefault("manifests", [])
        return idx

    def write(self, idx: dict, *, freeing: bool = False) -> None:
        """Replace index.json; ``freeing``: this write only removes entries, and may use the reserve."""
        idx.setdefault("schemaVersion", 2)
        idx.setdefault("mediaType", mt.OCI_INDEX)
        data = json.dumps(idx, indent=1, ensure_ascii=False).encode() + b"\n"
        try:
            atomic_write(self.path, data, self.tmp)
        except OSError as e:
            if not (freeing and is_no_space(e) and self._drop_reserve()):
                raise
            atomic_write(self.path, data, self.tmp)
        self._bump()
        if not freeing:
            self.ensure_reserve(len(data))

    @contextmanager
    def transaction(self, *, freeing: bool = False) -> Iterator[dict]:
        """Read-modify-write under the index lock: yields the index, written back on success."""
        with self._lock():
            idx = self.read()
            yield idx
            self.write(idx, freeing=freeing)

    # -- the reserve -------------------------------------------------------------------------
    def ensure_reserve(self, index_size: int | None = None) -> None:
        """Make (or grow) the reserve if there is room; silently not if there is none."""
        if index_size is None:
            try:
                index_size = self.path.stat().st_size
            except OSError:
                index_size = 0
        if index_size <= EMPTY_INDEX_MAX:
            return  # (thousands of empty test stores need no reserve each)
        want = max(RESERVE_MIN, 2 * index_size)
        try:
            if self.reserve.stat().st_size >= want:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            try:
                os.posix_fallocate(fd, 0, want)
            except OSError as e:
                if is_no_space(e):
                    return  # a shorter reserve is still a reserve; retried after the next write
                os.ftruncate(fd, 0)  # no fallocate (some file systems): write real blocks
                os.write(fd, b"\0" * want)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _drop_reserve(self) -> bool:
        try:
            os.unlink(self.reserve)
            return True
        except FileNotFoundError:
            return False
