"""Fixtures for the registry tests: a real store, a real loopback registry, skopeo."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from oci_helpers import have  # noqa: E402


def open_store(root):
    try:
        from jupybox.image.store import ImageStore
    except ImportError as e:
        pytest.skip(f"jupybox.image.store is not available yet ({e})")
    return ImageStore(root)


@pytest.fixture
def store(jupybox_root):
    return open_store(jupybox_root)


@pytest.fixture
def store_factory(tmp_path):
    from jupybox.testing.images import store_factory

    return store_factory(tmp_path)


@pytest.fixture
def need_skopeo():
    if not have("skopeo"):
        pytest.skip("skopeo is not installed")
