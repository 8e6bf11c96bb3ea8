"""Images built ``FROM host``: this machine's environment plus layers of their own.

``FROM host`` starts a stage from the host image's config (its PATH with the running Python's
virtualenv first, its Cmd) and the view of this machine (:mod:`.hostview`) as the lowest lower
directory; ``RUN pip install ...`` then writes an ordinary layer. The image carries the label
``io.jupybox.host-view=<key>``: the store puts that view under its layers wherever the image is
used (a container, a RUN step, a ``COPY``), see :func:`lower_dirs`.

Such an image runs only where the view exists: ``save`` and ``push`` refuse it in one line, or
with ``--materialize`` first make it portable (:func:`materialize`): the view becomes a real
first layer (the size of the machine's environment: said before, with a progress bar).
"""

from __future__ import annotations

import copy
import os
import sys

from .. import errors

LABEL = "io.jupybox.host-view"
HOST_LABEL = "io.jupybox.image.host"  # the built-in host image's own label (not inherited)


def view_key(config: dict | None) -> str | None:
    """The host view an image config is built on, or None for an ordinary image."""
    labels = ((config or {}).get("config") or {}).get("Labels") or {}
    key = labels.get(LABEL)
    return key if isinstance(key, str) and key else None


def lower_dirs(layout, config: dict, relative: bool = False) -> list[str]:
    """The lower directories an image's layers sit on: [its host view] or []. A view that is gone
    (removed, or an image loaded on another machine) is made again from the machine as it is."""
    key = view_key(config)
    if key is None:
        return []
    from . import hostview

    path = hostview.path_of(layout, key)
    if path is None:
        _, path = hostview.current(layout)
    if relative:
        return [os.path.relpath(path, layout.layers)]
    return [str(path)]


def host_config(host_img, key: str | None) -> dict:
    """The host image's config as an ordinary image's: no layers yet, on the view ``key`` (None: no
    view, the view becomes its first layer)."""
    cfg = copy.deepcopy(host_img.config)
    section = cfg.setdefault("config", {})
    labels = dict(section.get("Labels") or {})
    labels.pop(HOST_LABEL, None)
    if key is not None:
        labels[LABEL] = key
    section["Labels"] = labels
    cfg["rootfs"] = {"type": "layers", "diff_ids": []}
    cfg["history"] = [] if key is None else [
        {"created": cfg.get("created", ""), "created_by": f"jupybox: this machine's environment (host view "
         f"{key[:12]})", "empty_layer": True}]
    return cfg


def host_state(builder, instr, img):
    """The build state ``FROM host`` starts from: the host image's config on the current view."""
    from ..dockerfile.state import State
    from . import hostview

    builder.emit(kind="info", message="FROM host: a view of this machine's environment (hard links, made once "
                                      "per state of the machine)")
    try:
        key, _ = hostview.current(builder.store.layout)
    except OSError as e:
        raise instr.error(f"{instr.text}: cannot make the view of this machine: {e.strerror or e}") from None
    return State(host_config(img, key), [])


def check_portable(img, verb: str) -> None:
    """Refuse to ``save``/``push`` an image that needs this machine's view, in one line."""
    if getattr(img, "is_host", False):
        raise errors.UsageError(f"{verb}: the built-in host image is this machine itself: make a portable image of "
                                f"it with `jupybox commit host IMAGE`")
    key = view_key(img.config)
    if key is not None:
        name = img.refs[0] if img.refs else img.short_id
        raise errors.UsageError(f"{verb}: {name} is built FROM host (its lowest layer is this machine's "
                                f"environment, view {key[:12]}): run `jupybox {verb} --materialize` to make it "
                                "a real layer first")


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
    [view] = lower_dirs(store.layout, img.config)
    size, files = estimate(view)
    from ..units import human_size_si

    out.write(f"materializing {img.refs[0] if img.refs else img.short_id}: this machine's environment becomes a "
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
