"""Test helpers for jupybox and for projects that use it (like trio's ``testing``).

- :func:`busybox_rootfs` / :func:`busybox_tarball`: a tiny rootfs from busybox-static.
- :func:`debian_tarball`: a cached ``mmdebstrap`` Debian rootfs (python3 by default).
- :func:`import_image`: put a rootfs tarball into a jupybox store under a tag.
- :class:`Registry`: Debian's ``docker-registry`` on loopback, optional htpasswd auth.
- :func:`snapshot` / :func:`assert_no_leaks`: mounts, cgroups, children, fds left behind.

Slow artefacts are cached outside the work tree, in ``$JUPYBOX_TEST_CACHE`` or
``~/.cache/jupybox-tests`` (:func:`cache_dir`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .images import TestImage, import_image
from .leaks import LeakError, Snapshot, assert_no_leaks, snapshot
from .registry import Registry, registry_available
from .rootfs import busybox_rootfs, busybox_tarball, debian_tarball


def cache_dir(create: bool = True) -> Path:
    """``$JUPYBOX_TEST_CACHE`` or ``~/.cache/jupybox-tests`` (created)."""
    env = os.environ.get("JUPYBOX_TEST_CACHE")
    path = Path(env) if env else Path(os.path.expanduser("~")) / ".cache" / "jupybox-tests"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = [
    "LeakError",
    "Registry",
    "Snapshot",
    "TestImage",
    "assert_no_leaks",
    "busybox_rootfs",
    "busybox_tarball",
    "cache_dir",
    "debian_tarball",
    "import_image",
    "registry_available",
    "snapshot",
]
