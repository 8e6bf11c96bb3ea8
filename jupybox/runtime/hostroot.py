"""The lower directory of the built-in ``host`` image: an empty skeleton of a root filesystem.

The host's own directories are bind-mounted read-only on top of it at start (see
``jupybox.image.host``); the skeleton only gives them mount points, fresh empty /tmp, /var, /home
and /root, and the host's top-level symlinks (``/bin -> usr/bin`` on a merged-/usr system).
It is made once per root, atomically, and shared by every host container as a read-only lower.
"""

from __future__ import annotations

import hashlib
import os
import shutil

from ..paths import Layout

DIRS = {
    "usr": 0o755, "etc": 0o755, "opt": 0o755, "proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755,
    "tmp": 0o1777, "var": 0o755, "var/tmp": 0o1777, "home": 0o755, "root": 0o700, "mnt": 0o755,
    "srv": 0o755, "media": 0o755,
}


def skeleton(layout: Layout, host_root) -> str:
    """The skeleton for ``host_root`` (a ``jupybox.image.host.HostRoot``): its symlinks and mount points."""
    links = sorted(host_root.symlinks)
    mkdirs = sorted(set(host_root.mkdirs) | {dst for _, dst in host_root.binds})
    key = hashlib.sha256(repr((sorted(DIRS.items()), links, mkdirs)).encode()).hexdigest()[:12]
    path = layout.root / f"hostroot-{key}"
    if path.is_dir():
        return str(path)
    tmp = layout.tmp / f"hostroot-{key}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, target in links:
        os.symlink(target, tmp / name.lstrip("/"))
    for name, mode in DIRS.items():
        d = tmp / name
        if not os.path.lexists(d):
            d.mkdir()
            os.chmod(d, mode)
    for point in mkdirs:
        # parents of the binds (/root/.pyenv/versions) and the mount points themselves
        d = tmp / point.lstrip("/")
        if not os.path.lexists(d):
            d.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process made it first
    return str(path)
