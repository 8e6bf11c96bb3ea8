"""Where a stage starts and what ``--from`` names: local images (pulled when missing, or always
with ``build --pull``), earlier stages, ``scratch``; and an image as a build state."""

from __future__ import annotations

import copy

from ..errors import ImageNotFound, JupyboxError
from .context import EmptyFS, ImageFS
from .instructions import Instruction
from .state import StageCtx, State, arch


def state_of(store, img) -> State:
    """A stored image as a build state (layer media types made explicit)."""
    from ..image import mediatypes as mt

    cfg = copy.deepcopy(img.config)
    cfg.setdefault("config", {})
    cfg.setdefault("history", [])
    cfg["rootfs"] = {"type": "layers", "diff_ids": list(img.diff_ids)}
    cfg.setdefault("architecture", arch())
    cfg.setdefault("os", "linux")
    layers = []
    for d in img.layers:
        media = d.get("mediaType")
        if media not in mt.LAYER_BY_COMPRESSION.values():
            from ..image.layer import detect_compression

            kind = "none"
            try:
                with open(store.blob_path(d["digest"]), "rb") as f:
                    kind = detect_compression(f.read(8))
            except OSError:
                kind = {"application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip"}.get(media, "none")
            media = mt.LAYER_BY_COMPRESSION.get(kind, mt.OCI_LAYER)
        layers.append({"mediaType": media, "digest": d["digest"], "size": d["size"]})
    return State(cfg, layers)


def host_state(b, instr: Instruction, img) -> State:
    """``FROM host``: the host image's config on the view of the host as it is now (made when
    missing: hard links, see :mod:`jupybox.image.hostview`), no layers yet."""
    from ..image import hostview
    from ..image.hostbased import host_config

    b.emit(kind="info", message="FROM host: a view of the host's environment (hard links, made once per "
                                "state of the machine)")
    try:
        key, _ = hostview.current(b.store.layout)
    except OSError as e:
        raise instr.error(f"{instr.text}: cannot make the view of the host: {e.strerror or e}") from None
    return State(host_config(img, key), [])


def resolve_image(b, instr: Instruction, ref: str):
    """A local image, pulled when missing (``b.pull`` True), never (False), or first of all
    (``"always"``: docker's ``build --pull``, once per reference and build)."""
    if b.pull == "always" and ref not in b.pulled:
        img = _pull(b, instr, ref)
        b.pulled[ref] = img
        return img
    if ref in b.pulled:
        return b.pulled[ref]
    try:
        return b.store.resolve(ref)
    except ImageNotFound:
        if not b.pull:
            raise instr.error(f"{instr.text}: image {ref!r} not found locally (and pulling is off)") from None
    except JupyboxError as e:
        raise instr.error(f"{instr.text}: {e}") from None
    return _pull(b, instr, ref)


def _pull(b, instr: Instruction, ref: str):
    b.emit(kind="info", message=f"pulling {ref}")
    try:
        from ..registry import pull

        return pull(b.store, ref)
    except (JupyboxError, OSError) as e:
        raise instr.error(f"{instr.text}: pulling {ref}: {e}") from None


def source_fs(b, ctx: StageCtx, instr: Instruction, frm: str) -> tuple[ImageFS, str]:
    """What ``--from=frm`` (COPY, RUN --mount) reads: a stage (built first), ``scratch`` or an
    image; with the id that stands for its content."""
    idx = b.stage_index(frm)
    if idx is None and frm.isdigit():
        idx = int(frm)
        if idx >= len(b.parsed.stages):
            raise ValueError(f"invalid --from: stage index {frm} does not exist")
    if idx is not None:
        if idx == ctx.stage.index:
            raise ValueError(f"invalid --from: a stage cannot copy from itself ({frm!r})")
        state = b.build_stage(idx).state
        return b.image_fs(state), state.id
    if frm.lower() == "scratch":
        return EmptyFS(), "scratch"  # type: ignore[return-value]
    img = resolve_image(b, instr, frm)
    return b.image_fs(state_of(b.store, img)), img.id
