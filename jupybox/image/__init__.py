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


def __getattr__(name: str):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'jupybox.image' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"jupybox.image.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
