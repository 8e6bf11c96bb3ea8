"""Images: references, the OCI-layout store, safe layer application, ``import``, the host image.

Names are imported on first use, so that ``jupybox run`` does not pay for the unpacking code.
"""

from __future__ import annotations

_NAMES = {
    "Image": "model",
    "ImageStore": "store",
    "LayerInfo": "layer",
    "Reference": "reference",
    "extract_layer": "layer",
    "import_rootfs": "importer",
    "parse_changes": "importer",
    "parse_reference": "reference",
    "unpack_layer": "layer",
    "save": "archive",
    "load": "archive",
}

__all__ = sorted(_NAMES)


from .._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _NAMES, globals())
