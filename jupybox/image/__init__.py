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


# ``jupybox.image(ref)`` is the public API's (``jupybox.api.image``), and importing this package
# makes ``jupybox.image`` the package itself (the import system sets the parent's attribute): every
# run imports it, so the package answers the call as the API does.
import sys as _sys  # noqa: E402
import types as _types  # noqa: E402


class _CallableModule(_types.ModuleType):
    def __call__(self, ref: str, *, root=None):
        """``jupybox.image(ref, root=...)``: the image ``ref`` names in the store (as the API's)."""
        from ..paths import Layout
        from .store import ImageStore

        return ImageStore(Layout(root)).resolve(ref)


_sys.modules[__name__].__class__ = _CallableModule
