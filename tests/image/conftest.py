"""Fixtures for the image tests; helpers live in jbx_image_helpers.py (put on sys.path here,
since the suite runs with --import-mode=importlib)."""

from __future__ import annotations

import os
import sys

import pytest

from jupybox.testing import images

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
    return images.store_factory(tmp_path)


@pytest.fixture
def store(store_factory):
    return store_factory()


@pytest.fixture(scope="module")
def docker_cli(tmp_path_factory):
    """``docker ...`` against a private dockerd started for the module (Debian's docker.io, 20.10)."""
    with images.docker_or_skip(tmp_path_factory.mktemp("dockerd")) as run:
        yield run
