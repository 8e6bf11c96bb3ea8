"""Manifests read as ``kubectl`` reads them: YAML 1.1 scalars (sigs.k8s.io/yaml is go-yaml v2), so
``defaultMode: 0400`` is octal 256 and ``yes`` a boolean, dates stay strings (JSON has none).

The walk that records every key's line and enforces the size, node and depth limits is compose's
(``jupybox.compose.yamlfile``); only the scalar rules differ (compose files are YAML 1.2).
"""

from __future__ import annotations

import yaml

from ..compose.yamlfile import MAX_BYTES, Document, _string_keys, _Walk
from ..compose.errors import ComposeError
from .errors import KubeError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_file(path: str) -> list[Document]:
    """Every non-empty document of the file; a problem is one KubeError with the file and line."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise KubeError(e.strerror or str(e), path) from None
    if len(raw) > MAX_BYTES:
        raise KubeError(f"larger than {MAX_BYTES >> 20} MiB", path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise KubeError(f"not UTF-8 ({e.reason} at byte {e.start})", path) from None
    loader = _Loader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: dict = {}
            _Walk(path, lines).walk(node, ())
            data = _string_keys(loader.construct_document(node))
            if data is None:
                continue
            if not isinstance(data, dict):
                raise KubeError("a Kubernetes object must be a mapping", path, node.start_mark.line + 1)
            docs.append(Document(path, data, lines))
    except ComposeError as e:  # the walk's limits
        raise KubeError(e.message, e.file, e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise KubeError(e.problem or e.context or "invalid YAML", path, mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, ValueError, TypeError) as e:
        raise KubeError(f"invalid YAML: {' '.join(str(e).split())}", path) from None
    finally:
        loader.dispose()
    return docs
