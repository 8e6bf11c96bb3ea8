"""Images: references, the OCI-layout store, safe layer application, ``import``, the host image."""

from .importer import import_rootfs, parse_changes
from .layer import LayerInfo, extract_layer, unpack_layer
from .model import Image
from .reference import Reference, parse_reference
from .store import ImageStore

__all__ = [
    "Image",
    "ImageStore",
    "LayerInfo",
    "Reference",
    "extract_layer",
    "import_rootfs",
    "parse_changes",
    "parse_reference",
    "unpack_layer",
]
