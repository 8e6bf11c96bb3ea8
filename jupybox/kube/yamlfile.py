"""Manifests read as ``kubectl`` reads them: YAML 1.1 scalars (sigs.k8s.io/yaml is go-yaml v2), so
``defaultMode: 0400`` is octal 256 and ``yes`` a boolean; dates stay strings (JSON has none).

The reading itself is compose's (``jupybox.compose.yamlfile``: the line of every key, the size,
node and depth limits); only the scalar rules differ (compose files are YAML 1.2).
"""

from __future__ import annotations

import yaml

from ..compose import yamlfile
from ..compose.errors import ComposeError
from .errors import KubeError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_file(path: str) -> list[yamlfile.Document]:
    """Every non-empty document of the file; a problem is one KubeError with the file and line."""
    try:
        return yamlfile.load_file(path, loader_class=_Loader)
    except ComposeError as e:
        raise KubeError(e.message, e.file, e.line) from None
