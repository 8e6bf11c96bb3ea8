"""Where jupybox keeps its state.

    $JUPYBOX_ROOT (default /var/lib/jupybox as root, ~/.local/share/jupybox otherwise)
      images/        the OCI image layout: oci-layout, index.json, blobs/sha256/
      layers/<hex>/  each layer unpacked once, by diff_id, used as an overlay lower dir
      containers/<id>/  config.json (spec), state.json, upper/ work/ (the write layer), logs
      spare/<x>/     removed containers' directories, emptied, kept for the next one (root only)
      volumes/<name>/_data
      tmp/           half-written files; anything here is garbage after a crash
      cache/         compiled seccomp filters and other derived data
"""

from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    env = os.environ.get("JUPYBOX_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/jupybox")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "jupybox"


class Layout:
    """The directories under one jupybox root."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_root()
        self.images = self.root / "images"
        self.layers = self.root / "layers"
        self.containers = self.root / "containers"
        self.spare = self.root / "spare"
        self.volumes = self.root / "volumes"
        self.tmp = self.root / "tmp"
        self.cache = self.root / "cache"

    def ensure(self) -> "Layout":
        for d in (self.root, self.images, self.layers, self.containers, self.volumes, self.tmp, self.cache):
            d.mkdir(mode=0o700 if d == self.root else 0o755, parents=True, exist_ok=True)
        return self
