"""What a notebook needs, pinned: ``jupybox notebook images|lock NB.ipynb``, ``save --from-notebook``.

A notebook needs the image of each ``%%container`` cell (the IMAGE word of its first line, parsed
with the magic's own parser; the default image when there is none) and, when its kernel is a
jupybox kernel (``metadata.kernelspec.name`` names an installed kernelspec of the jupybox
provisioner), the kernel's image.

``lock`` rewrites each cell's image to ``NAME:TAG@DIGEST`` (the digest the cell last ran, from its
output's ``jupybox`` record, else the digest the tag names now), puts the record in the cell's
metadata (``jupybox: {image, digest, id, options}``) and the kernel's image and digest in the
notebook's (``metadata.jupybox.kernel``). The notebook is read and written with nbformat (its
schema validates what is read: a damaged notebook is one line) and replaced atomically.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

from .. import errors

MAX_NOTEBOOK = 256 << 20


@dataclass
class Need:
    where: str  # "cell 3" or "kernel"
    image: str  # as written (or the default)
    digest: str | None = None  # pinned or recorded
    cell: int | None = None


def read(path):
    import nbformat

    try:
        if os.path.getsize(path) > MAX_NOTEBOOK:
            raise errors.UsageError(f"{path}: larger than {MAX_NOTEBOOK >> 20} MiB")
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except FileNotFoundError:
        raise errors.NotFound(f"{path}: no such notebook") from None
    except (ValueError, TypeError, KeyError, AttributeError, nbformat.ValidationError) as e:
        raise errors.UsageError(f"{path}: not a valid notebook: {str(e).splitlines()[0]}") from None
    return nb


def _cell_image(source: str, default_image: str = "host") -> tuple[list[str], int | None]:
    """(the first line's words, the index of the IMAGE word or None) of a %%container cell."""
    from ..cli.parser import split_command
    from ..jupyter.magics import cell_parser

    first = source.split("\n", 1)[0]
    words = shlex.split(first[len("%%container"):])
    parser = cell_parser()
    head, _ = split_command(parser, words, positionals=1)
    try:
        args = parser.parse_args(head)
    except (errors.UsageError, SystemExit, Exception):  # noqa: BLE001 - a cell the magic would refuse too
        return words, None
    if args.image is None:
        return words, None
    return words, len(head) - 1


def _recorded(cell) -> dict | None:
    for out in cell.get("outputs") or []:
        rec = (out.get("metadata") or {}).get("jupybox")
        if isinstance(rec, dict) and rec.get("id"):
            return rec
    rec = (cell.get("metadata") or {}).get("jupybox")
    return rec if isinstance(rec, dict) else None


def container_cells(nb):
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.lstrip().startswith("%%container"):
            yield i, cell


def kernel_image(nb) -> tuple[str, str] | None:
    """(kernel name, image) when the notebook's kernel is a jupybox kernel installed here."""
    name = ((nb.metadata.get("kernelspec") or {}).get("name") or "").lower()
    if not name:
        return None
    try:
        from ..jupyter.kernelspec import list_kernels

        for k in list_kernels():
            if k.name == name:
                return name, k.image
    except Exception:  # noqa: BLE001 - no jupyter_client: no kernel to find
        return None
    return None


def needs(nb, default_image: str = "host") -> list[Need]:
    out = []
    for i, cell in container_cells(nb):
        cell.source = cell.source.lstrip()
        words, at = _cell_image(cell.source)
        image = words[at] if at is not None else default_image
        rec = _recorded(cell)
        digest = None
        if "@" in image:
            digest = image.rsplit("@", 1)[1]
        elif rec and rec.get("image") == image:
            digest = rec.get("digest")
        out.append(Need(f"cell {i + 1}", image, digest, i))
    k = kernel_image(nb)
    if k is not None:
        rec = (nb.metadata.get("jupybox") or {}).get("kernel") or {}
        out.append(Need(f"kernel {k[0]}", k[1], rec.get("digest") if rec.get("image") == k[1] else None))
    return out


def pinned_ref(store, image: str, digest: str | None) -> tuple[str, dict]:
    """``NAME:TAG@DIGEST`` for an image and its record."""
    from ..image.reference import parse_reference

    img = None
    if digest:
        from .pins import by_digest

        ref = parse_reference(image.split("@")[0])
        img = by_digest(store, type(ref)(ref.domain, ref.path, ref.tag, digest))
    else:
        img = store.resolve(image)
        digest = img.manifest_digest
    ref = parse_reference(image.split("@")[0]) if "@" in image else parse_reference(image)
    text = f"{ref.familiar_name()}:{ref.tag or 'latest'}@{digest}"
    return text, {"image": text, "digest": digest, "id": img.id}


def lock(path, store, out=None) -> list[str]:
    """Pin every image of the notebook ``path`` (rewritten in place); returns one line per change."""
    import nbformat

    from ..image.host import is_host_reference

    nb = read(path)
    said = []
    for need in needs(nb):
        if is_host_reference(need.image) or need.image.startswith("sha256:"):
            said.append(f"{need.where}: {need.image}: not pinned ({'the host: jupybox commit host IMAGE makes an image of it' if is_host_reference(need.image) else 'an image id is pinned already'})")
            continue
        text, record = pinned_ref(store, need.image, need.digest)
        if need.cell is None:
            nb.metadata.setdefault("jupybox", {})["kernel"] = {"name": need.where.split()[-1], **record}
            said.append(f"{need.where}: {need.image} -> {record['digest']}")
            continue
        cell = nb.cells[need.cell]
        head, _, rest = cell.source.partition("\n")
        words, at = _cell_image(head)
        if at is None:
            words = words + [text]  # the default image, named
        else:
            words[at] = text
        cell.source = "%%container " + shlex.join(words) + ("\n" + rest if rest or "\n" in cell.source else "")
        old = (cell.metadata.get("jupybox") or {}) if isinstance(cell.metadata.get("jupybox"), dict) else {}
        cell.metadata["jupybox"] = {**old, **record, "options": (_recorded(cell) or {}).get("options", {})}
        if need.image != text:
            said.append(f"{need.where}: {need.image} -> {text}")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return said


def images(path, store) -> list[tuple[Need, str | None]]:
    """(need, the local image id or None when missing) for each image of the notebook."""
    from .pins import by_digest

    out = []
    for need in needs(read(path)):
        try:
            if need.digest:
                from ..image.reference import parse_reference

                ref = parse_reference(need.image.split("@")[0])
                img = by_digest(store, type(ref)(ref.domain, ref.path, ref.tag, need.digest))
            else:
                img = store.resolve(need.image)
            out.append((need, img.id))
        except errors.JupyboxError:
            out.append((need, None))
    return out
