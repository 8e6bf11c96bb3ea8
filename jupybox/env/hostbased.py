"""Making an image built ``FROM host`` portable: ``save/push --materialize`` and ``commit host``.

What such an image is (its label, the view under its layers, the refusal to save it as it is)
lives with the images: :mod:`jupybox.image.hostbased` and :mod:`jupybox.image.hostview`. Here the
view becomes a real first layer (the size of the machine's environment: said before, with a
progress bar): :func:`materialize`, and :func:`view_layer` for ``jupybox commit host``.
"""

from __future__ import annotations

import copy
import os
import sys

from .. import errors

from ..image.hostbased import LABEL, view_key

def estimate(path: str) -> tuple[int, int]:
    """(bytes, files) of a view's regular files, each inode once."""
    seen: set[tuple[int, int]] = set()
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            files += 1
            if st.st_mode & 0o170000 == 0o100000:
                total += st.st_size
    return total, files


class _Progress:
    """A one-line progress bar on a terminal stream (a line per 10 % elsewhere)."""

    def __init__(self, total: int, stream, what: str):
        self.total = max(total, 1)
        self.stream = stream
        self.what = what
        self.done = 0
        self.shown = -1
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def add(self, n: int) -> None:
        from ..units import human_size_si

        self.done += n
        pct = min(100, self.done * 100 // self.total)
        step = pct if self.tty else pct // 10 * 10
        if step == self.shown:
            return
        self.shown = step
        bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
        line = f"{self.what} [{bar}] {pct:3d}% {human_size_si(self.done)}/{human_size_si(self.total)}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and pct == 100:
            self.stream.write("\n")
        self.stream.flush()


def view_layer(store, view: str, progress=None):
    """The view as a real layer (tar blob, unpacked directory); returns a ``LayerRef``."""
    from ..dockerfile.layers import LayerWriter, adopt_dir
    from ..dockerfile.upper import write_tree
    from ..image import scratch

    with LayerWriter(store, unpack=False) as w:
        if progress is not None:
            add_file = w.add_file

            def counted(name, mode, uid, gid, mtime, **kw):
                add_file(name, mode, uid, gid, mtime, **kw)
                progress.add(kw.get("size") or 0)

            w.add_file = counted
        write_tree(w, view)
        ref = w.commit()
    if not store.has_layer(ref.diff_id):
        tmp = scratch.new_dir(store.tmp, "materialize", 0o755)
        os.rmdir(tmp)
        import subprocess

        subprocess.run(["cp", "-al", "--no-target-directory", view, tmp], check=True, capture_output=True)
        adopt_dir(store, tmp, ref.diff_id)
    return ref


def materialize(store, ref: str, out=None, tag: bool = True):
    """Make the FROM-host image ``ref`` portable: a new image whose first layer is its view, then its
    own layers; the names of ``ref`` move to it (``tag``). Returns the new image (``ref`` itself
    when it needs no view)."""
    img = store.resolve(ref)
    if img.is_host:
        raise errors.UsageError("the built-in host image: use `jupybox commit host IMAGE` to make an image of it")
    key = view_key(img.config)
    if key is None:
        return img
    out = out or sys.stderr
    from ..image.hostbased import lower_dirs

    [view] = lower_dirs(store.layout, img.config)
    size, files = estimate(view)
    from ..units import human_size_si

    out.write(f"materializing {img.refs[0] if img.refs else img.short_id}: the host's environment becomes a "
              f"layer of about {human_size_si(size)} ({files} files)\n")
    layer = view_layer(store, view, _Progress(size, out, "  host view"))
    cfg = copy.deepcopy(img.config)
    labels = dict(cfg["config"].get("Labels") or {})
    labels.pop(LABEL, None)
    labels["io.jupybox.materialized-from"] = img.id
    cfg["config"]["Labels"] = labels
    cfg["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id] + list(img.diff_ids)}
    cfg["history"] = [{"created": cfg.get("created", ""), "created_by": f"jupybox: host view {key[:12]}, "
                       "materialized"}] + [h for h in cfg.get("history") or [] if not h.get("empty_layer")
                                           or "host view" not in h.get("created_by", "")]
    blobs = [layer.desc["digest"]] + [d["digest"] for d in img.layers]
    return store.create_image(cfg, blobs, list(img.names) if tag else [])
