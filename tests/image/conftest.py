"""Fixtures for the image tests; helpers live in jbx_image_helpers.py (put on sys.path here,
since the suite runs with --import-mode=importlib)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def sentinel(tmp_path):
    """A directory outside the layer that hostile archives aim at; assert it stays untouched."""
    s = tmp_path / "outside"
    s.mkdir()
    (s / "keep").write_text("keep")

    def snapshot():
        return sorted((p.relative_to(s).as_posix(), p.read_bytes() if p.is_file() else None)
                      for p in s.rglob("*"))

    before = snapshot()
    yield s
    assert snapshot() == before, "something was written outside the layer"


@pytest.fixture
def image_store(tmp_path):
    from jupybox.image import ImageStore

    return ImageStore(tmp_path / "root")


@pytest.fixture
def store_factory(tmp_path):
    n = [0]

    def make():
        from jupybox.image.store import ImageStore

        n[0] += 1
        root = tmp_path / f"store{n[0]}"
        root.mkdir()
        return ImageStore(root)

    return make


@pytest.fixture
def store(store_factory):
    return store_factory()
