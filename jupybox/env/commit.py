"""``jupybox commit CONTAINER [IMAGE]`` (docker's verb) and ``jupybox commit host IMAGE``.

A container's changes are its overlay upper directory. It is copied (``cp -a``: the container may
go on writing; a frozen one does not, ``--pause`` is the default as in docker) and the copy becomes
the new layer through the same code as a build's RUN step (:func:`jupybox.dockerfile.upper.commit_upper`:
whiteouts, opaque directories, the runtime's /etc mount points left out). The config is the
image's with ``-c`` changes (the Dockerfile's rules, :func:`jupybox.dockerfile.apply_changes`),
``-a`` author and ``-m`` comment in the history.

A container of the built-in ``host`` image gives an image built on the host's view (see
:mod:`.hostbased`); ``commit host IMAGE`` makes the view itself a real layer: the machine's
environment (what ``host`` shows, without its secrets) as a portable image.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys

from .. import errors


@contextlib.contextmanager
def paused(engine, rec, pause: bool):
    """The container's cgroup frozen for the copy (v1 freezer, v2 cgroup.freeze); nothing when it
    does not run or ``pause`` is False."""
    if not pause or engine.reconcile(rec).status.value != "running":
        yield
        return
    cg = engine.cgroups.open(rec.id)
    freezer = getattr(cg, "freezer", None)
    v2 = [os.path.join(d, "cgroup.freeze") for d in getattr(cg, "dirs", []) or []
          if os.path.exists(os.path.join(d, "cgroup.freeze"))]
    if freezer is not None:
        freezer.freeze()
    for f in v2:
        with open(f, "w") as fh:
            fh.write("1")
    try:
        yield
    finally:
        if freezer is not None:
            freezer.thaw()
        for f in v2:
            with open(f, "w") as fh:
                fh.write("0")


def _history(cfg: dict, created_by: str, message: str | None, layer) -> None:
    from ..image.model import now_rfc3339

    now = now_rfc3339()
    cfg["created"] = now
    entry = {"created": now, "created_by": created_by}
    if message:
        entry["comment"] = message
    if layer is None:
        entry["empty_layer"] = True
    cfg["history"] = list(cfg.get("history") or []) + [entry]


def commit(engine, container: str, ref: str | None = None, *, message: str | None = None,
           author: str | None = None, changes=(), pause: bool = True, out=None):
    """The container's changes as a new image named ``ref``; returns the image."""
    from ..dockerfile import apply_changes
    from ..dockerfile.context import ImageFS
    from ..dockerfile.upper import commit_upper
    from ..image import scratch
    from ..image.host import is_host_reference
    from ..image.hostbased import host_config

    store = engine.store
    if is_host_reference(container):
        return commit_host(store, ref, message=message, author=author, changes=changes, out=out)
    if ref is not None:
        from ..image.reference import parse_reference

        if parse_reference(ref).digest:
            raise errors.UsageError(f"invalid reference {ref!r}: a name cannot carry a digest")
    rec = engine.records.get(container)
    image = rec.config["image"]
    try:
        base = store.resolve(image["id"])
    except errors.ImageNotFound:
        raise errors.ImageNotFound(f"container {rec.name}: its image {image.get('ref')} ({image['id'][:19]}) is "
                                   "no longer in the store") from None
    if base.is_host:
        from ..image import hostview

        key, _ = hostview.current(store.layout)
        cfg, layers = host_config(base, key), []
    else:
        cfg, layers = copy.deepcopy(base.config), list(base.layers)
    section = apply_changes(list(changes or ()), cfg.get("config") or {})
    cfg["config"] = section
    if author:
        cfg["author"] = author
    tmp = scratch.new_dir(store.tmp, "commit", 0o755)
    os.rmdir(tmp)
    try:
        with paused(engine, rec, pause):
            subprocess.run(["cp", "-a", "--no-target-directory", str(rec.upper), tmp], check=True,
                           capture_output=True)
        probe = type(base)(id=base.id, config=cfg, manifest={"layers": layers}, store=store)
        layer = commit_upper(store, tmp, ImageFS(store.layer_dirs(probe)))
    except subprocess.CalledProcessError as e:
        raise errors.JupyboxError(f"commit {rec.name}: copying its changes: {e.stderr.decode().strip()}") from None
    finally:
        if os.path.exists(tmp):
            scratch.remove_tree(tmp)
    argv = rec.config.get("argv") or []
    _history(cfg, " ".join(argv), message, layer)
    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    blobs = [d["digest"] for d in layers]
    if layer is not None:
        diff_ids.append(layer.diff_id)
        blobs.append(layer.desc["digest"])
    cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return store.create_image(cfg, blobs, [ref] if ref else [])


def commit_host(store, ref: str | None, *, message=None, author=None, changes=(), out=None):
    """This machine's environment (the host image's view) as a portable one-layer image."""
    from ..dockerfile import apply_changes
    from ..image.host import host_image
    from ..image import hostview
    from ..image.hostbased import host_config
    from .hostbased import _Progress, estimate, view_layer

    if not ref:
        raise errors.UsageError("commit host: name the image (jupybox commit host IMAGE)")
    out = out or sys.stderr
    _, view = hostview.current(store.layout)
    size, files = estimate(str(view))
    from ..units import human_size_si

    out.write(f"commit host: the host's environment is about {human_size_si(size)} ({files} files)\n")
    layer = view_layer(store, str(view), _Progress(size, out, "  host view"))
    cfg = host_config(host_image(store), None)
    cfg["config"] = apply_changes(list(changes or ()), cfg.get("config") or {})
    if author:
        cfg["author"] = author
    _history(cfg, "jupybox commit host", message, layer)
    cfg["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id]}
    return store.create_image(cfg, [layer.desc["digest"]], [ref])
