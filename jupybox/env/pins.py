"""Pinned in the notebook: the image digest each ``%%container`` cell ran, and ``--locked``.

Before a ``%%container`` cell runs, the magic asks :func:`pin` for the image to start:

* ``NAME:TAG`` → the image the tag names now; the record says which (its manifest digest);
* ``NAME:TAG@sha256:D`` (what ``jupybox notebook lock`` writes) → the image ``D``, whatever the tag
  says now (docker's rule: the digest wins); with ``--locked`` (or ``JUPYBOX_LOCKED=1`` in the
  kernel's environment, e.g. ``%env JUPYBOX_LOCKED=1`` at the top: the notebook-wide setting) a tag
  that points elsewhere now refuses to run, naming both digests;
* ``--locked`` on a cell whose image is not pinned refuses too: lock the notebook first.

The record ``{"image", "digest", "id", "options"}`` goes into the cell's output as the metadata
``jupybox`` of an (empty) display item: a kernel cannot write its cell's metadata, a front end
saves an output's metadata with the notebook. ``jupybox notebook lock`` copies it into the cell's
own metadata and rewrites the cell's image to ``NAME:TAG@DIGEST`` (see :mod:`.notebook`).
"""

from __future__ import annotations

import os

from .. import errors

MIME = "application/vnd.jupybox.pin+json"
LOCK_ENV = "JUPYBOX_LOCKED"


def add_pin_options(parser) -> None:
    parser.add_argument("--locked", action="store_true",
                        help="refuse to run when the cell's pinned image tag points elsewhere now")


def enforced(flag: bool = False) -> bool:
    return flag or os.environ.get(LOCK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def by_digest(store, ref):
    """The local image with manifest digest ``ref.digest`` (its name first, then any image: a tag
    that moved leaves the pinned image untagged)."""
    try:
        return store.resolve(f"{ref.name}@{ref.digest}", hint=False)
    except errors.ImageNotFound:
        pass
    for img in store.list():
        if ref.digest in img.manifest_digests:
            return img
    raise errors.ImageNotFound(f"No such image: {ref.familiar()} (the pinned digest is not in the store: pull it "
                               f"or load the notebook's bundle, `jupybox save --from-notebook`)")


def pin(store, text: str, options: dict | None = None, locked: bool = False) -> tuple[str, dict]:
    """(what to start: an image id or ``text``, the record) for a cell's image ``text``."""
    from ..image.host import is_host_reference
    from ..image.reference import parse_reference

    locked = enforced(locked)
    record = {"image": text, "options": _options(options)}
    if is_host_reference(text):
        if locked:
            raise errors.UsageError(f"--locked: {text} is the host, not an image that can be pinned: make one "
                                    "with `jupybox commit host IMAGE`")
        img = store.resolve(text)
        record.update(digest=None, id=img.id)
        return text, record
    try:
        ref = parse_reference(text)
    except errors.UsageError:
        ref = None  # an image id
    if ref is None or ref.digest is None:
        if locked:
            raise errors.UsageError(f"--locked: the image {text} is not pinned to a digest: run `%container lock` "
                                    "(or `jupybox notebook lock NOTEBOOK`) first")
        img = store.resolve(text)
        record.update(digest=img.manifest_digest, id=img.id)
        return text, record
    img = by_digest(store, ref)
    if locked and ref.tag is not None:
        tagged = f"{ref.familiar_name()}:{ref.tag}"
        try:
            now = store.resolve(tagged, hint=False)
        except errors.ImageNotFound:
            now = None
        if now is None or ref.digest not in now.manifest_digests:
            where = f"points to {now.manifest_digest}" if now is not None else "names no image"
            raise errors.Conflict(f"--locked: {tagged} now {where}, but this cell is locked to {ref.digest}: "
                                  f"re-tag it (jupybox tag {ref.familiar_name()}@{ref.digest} {tagged}) or lock "
                                  "the notebook again")
    record.update(digest=ref.digest, id=img.id)
    return img.id, record


def _options(options: dict | None) -> dict:
    keep = ("memory", "cpus", "pids_limit", "network", "env", "volumes", "user", "workdir", "read_only")
    return {k: v for k, v in (options or {}).items() if k in keep and v not in (None, [], {}, False)}


def show(record: dict) -> None:
    """The record as the cell's output metadata (an empty display item)."""
    from IPython.display import display

    display({MIME: record, "text/plain": ""}, raw=True, metadata={"jupybox": record})


def magic_pin(magics, image: str, options: dict, args) -> str:
    """``%%container``'s hook: the image to start (pinned, checked), its record shown in the cell."""
    from ..api import engine

    from ..jupyter.display import in_kernel

    target, record = pin(engine(magics.root).store, image, options, getattr(args, "locked", False))
    if in_kernel(getattr(magics, "shell", None)):  # a terminal IPython would print the empty text: nothing to save
        show(record)
    return target
