"""Media types the registry code handles: those of :mod:`jupybox.image.mediatypes`, plus what a
registry may serve that the store never holds (schema 1) and the groupings pull/push use."""

from __future__ import annotations

from ..image.mediatypes import (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_FOREIGN, DOCKER_LAYER_GZIP,  # noqa: F401
                                DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
                                OCI_LAYER_GZIP, OCI_LAYER_ND, OCI_LAYER_ND_GZIP, OCI_LAYER_ND_ZSTD, OCI_LAYER_ZSTD,
                                OCI_MANIFEST)

DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)
LAYERS = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_ND, OCI_LAYER_ND_GZIP, OCI_LAYER_ND_ZSTD,
          DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN)

# what a pull asks for, best first
ACCEPT_MANIFESTS = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
