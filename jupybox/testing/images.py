"""Put a rootfs tarball into a jupybox image store under a tag (``busybox:latest``)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TestImage:
    """An image imported for tests: ``ref`` in the store at ``root``."""

    __test__ = False  # not a pytest test class

    ref: str
    root: Path
    store: Any = None
    tarball: Path | None = None

    def __str__(self) -> str:
        return self.ref


def _open_store(root: Path):
    from jupybox.image import ImageStore  # the API under construction; ImportError -> caller skips

    try:
        return ImageStore(root)
    except TypeError:
        from jupybox.paths import Layout

        return ImageStore(Layout(root))


def import_image(root: str | os.PathLike, tarball: str | os.PathLike, ref: str = "busybox:latest") -> TestImage:
    """``import_rootfs(ImageStore(root), tarball, ref)``; returns a :class:`TestImage`.

    Raises ImportError while ``jupybox.image`` does not provide ImageStore/import_rootfs.
    """
    from jupybox.image import import_rootfs

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    store = _open_store(root)
    import_rootfs(store, Path(tarball), ref)
    return TestImage(ref=ref, root=root, store=store, tarball=Path(tarball))


def store_factory(tmp_path: Path):
    """``make()`` -> a new empty ImageStore under ``tmp_path`` (store1, store2, ...) at each call."""
    from jupybox.image.store import ImageStore

    made = []

    def make():
        root = Path(tmp_path) / f"store{len(made) + 1}"
        root.mkdir()
        made.append(root)
        return ImageStore(root)

    return make


@contextlib.contextmanager
def docker_or_skip(workdir: Path, text: bool = False):
    """``docker ...`` against a private dockerd (see jupybox.testing.dockerd), or the test skipped."""
    import pytest

    from .dockerd import DockerdUnavailable, private_dockerd

    try:
        with private_dockerd(workdir, text=text) as run:
            yield run
    except DockerdUnavailable as e:
        pytest.skip(str(e))
