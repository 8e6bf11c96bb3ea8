"""Where jupybox keeps its state.

    $JUPYBOX_ROOT (default /var/lib/jupybox as root, ~/.local/share/jupybox otherwise)
      images/        the OCI image layout: oci-layout, index.json, blobs/sha256/
      layers/<hex>/  each layer unpacked once, by diff_id, used as an overlay lower dir
      containers/<id>/  config.json (spec), state.json, upper/ work/ (the write layer), logs
      spare/<x>/     removed containers' directories, emptied, kept for the next one (root only)
      volumes/<name>/_data
      tmp/           half-written files; anything here is garbage after a crash
      cache/         compiled seccomp filters and other derived data
      generation     one byte appended by every change to images, volumes or networks (see below)
      run/           the store service's socket and lock (0700: no container ever sees it)
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
        self.run = self.root / "run"
        self.generation_file = self.root / "generation"

    def ensure(self) -> "Layout":
        for d in (self.root, self.images, self.layers, self.containers, self.volumes, self.tmp, self.cache):
            d.mkdir(mode=0o700 if d == self.root else 0o755, parents=True, exist_ok=True)
        if not self.generation_file.exists():
            try:
                os.close(os.open(self.generation_file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError:
                pass
        return self

    def store_id(self) -> str:
        """This store's identity (``<root>/id``, random, made at first use): what names the bridges
        and nftables tables it makes on the host (see ``network.ownership``)."""
        path = self.root / "id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        tmp = self.root / f".id.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(os.urandom(16).hex())
        try:
            os.link(tmp, path)  # the first writer wins; a concurrent one reads the winner's
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return path.read_text().strip()

    # -- the store's generation ---------------------------------------------------------------
    # Whatever is made ahead of time for speed (a prewarmed sandbox with an image's layers already
    # mounted, a remembered image resolution) is valid only for the store as it was: ``rmi`` then
    # ``load`` makes new layer directories at the same paths, and a sandbox mounted on the old ones
    # would show a stale filesystem. Every mutation appends one byte to ``generation`` (O_APPEND:
    # atomic between processes, no lock, no read-modify-write); the file's size is the generation,
    # and speculation made at another generation is thrown away. The identity of the root
    # directory is part of it: a store deleted and made again is another store.
    def bump_generation(self) -> None:
        """Call after any change to images, layers, volumes or networks. Needs no free space: on a
        full disk the file is replaced by an empty one, a new inode, which counts as a change too."""
        try:
            fd = os.open(self.generation_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            return  # no store (yet): nothing made ahead can refer to it
        try:
            os.write(fd, b".")
        except OSError:
            try:
                os.unlink(self.generation_file)
                os.close(os.open(self.generation_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            except OSError:
                pass  # missing: generation() says so, and that differs from any value seen before
        finally:
            os.close(fd)

    def generation(self) -> tuple[int, int, int, int]:
        """(root inode, root device, generation file inode, its size): equal, same store contents."""
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return (0, 0, 0, -1)
        try:
            g = os.stat(self.generation_file)
            return (st.st_ino, st.st_dev, g.st_ino, g.st_size)
        except FileNotFoundError:
            return (st.st_ino, st.st_dev, 0, -1)
