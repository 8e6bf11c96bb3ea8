"""Images built ``FROM host``: what they are, for the store, the archives and the registry.

An image built ``FROM host`` (see ``jupybox.dockerfile.bases.host_state``) carries the label
``io.jupybox.host-view=<key>``: its layers sit on the view ``<key>`` of the host's environment
(:mod:`.hostview`), which the store puts under them wherever the image is used (a container, a RUN
step, a ``COPY``: :func:`lower_dirs`). Such an image runs only where the view exists: ``save`` and
``push`` refuse it in one line (:func:`check_portable`); ``--materialize`` makes it portable first
(``jupybox.env.hostbased.materialize``).
"""

from __future__ import annotations

import copy
import os

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
        {"created": cfg.get("created", ""), "created_by": f"jupybox: the host's environment (host view "
         f"{key[:12]})", "empty_layer": True}]
    return cfg


def check_portable(img, verb: str) -> None:
    """Refuse to ``save``/``push`` an image that needs the host's view, in one line."""
    if getattr(img, "is_host", False):
        raise errors.UsageError(f"{verb}: the built-in host image is the host itself: make a portable image of "
                                f"it with `jupybox commit host IMAGE`")
    key = view_key(img.config)
    if key is not None:
        name = img.refs[0] if img.refs else img.short_id
        raise errors.UsageError(f"{verb}: {name} is built FROM host (its lowest layer is the host's "
                                f"environment, view {key[:12]}): run `jupybox {verb} --materialize` to make it "
                                "a real layer first")
