"""Manifests checked without a cluster, twice:

1. against the Kubernetes OpenAPI schema, as JSON schemas generated from it for one release
   (``kubernetes-validate``'s ``-strict`` set: an unknown field is an error, as ``kubectl apply``
   with server-side field validation says);
2. by the official ``kubernetes`` client's models: the document is deserialized into its model
   class (``V1Pod``, ``V1Deployment``...), which checks required fields and types, and serialized
   back: a field the models do not know would be lost on the way, so a difference is an error too.

3. the enumerations the API server checks and the published schema does not carry (a
   ``restartPolicy: Sometimes`` passes both of the above; a cluster refuses it), for the
   fields jupybox reads.

An error is one line: ``FILE:LINE: spec.containers[0].ports[0]: 'containerPort' is a required
property`` (the line when the manifest came from a file).
"""

from __future__ import annotations

import functools
import json

from .errors import KubeError

KINDS = {("v1", "Pod"): "V1Pod", ("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service",
         ("v1", "ConfigMap"): "V1ConfigMap", ("v1", "Secret"): "V1Secret",
         ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim"}


def _libraries():
    try:
        import kubernetes.client  # noqa: F401
        import kubernetes_validate.utils  # noqa: F401
    except ImportError:
        raise KubeError("jupybox kube checks manifests with the kubernetes and kubernetes-validate packages: "
                        "pip install 'jupybox[kube]'") from None


@functools.lru_cache(maxsize=1)
def _client():
    from kubernetes.client import ApiClient

    return ApiClient()


def schema_version() -> str:
    from kubernetes_validate.utils import latest_version

    return latest_version()


def path_text(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def check(doc: dict, file: str | None = None, line_of=None) -> None:
    """Raise KubeError if ``doc`` is not a valid object of a kind jupybox knows (see KINDS)."""
    _libraries()
    import kubernetes_validate.utils as kv

    where = (lambda path: line_of(path) if line_of else None)
    key = (doc.get("apiVersion"), doc.get("kind"))
    model = KINDS.get(key)
    if model is None:
        raise KubeError(f"{key[1]} ({key[0]}): not a kind jupybox knows ({', '.join(k for _, k in KINDS)})", file,
                        where(()))
    try:
        kv.validate(doc, schema_version(), strict=True)
    except kv.ValidationError as e:
        path = list(e.absolute_path)
        raise KubeError(e.message, file, where(path), path_text(path) or None) from None
    client = _client()
    try:
        obj = client.deserialize(json.dumps(doc), model, "application/json")
    except Exception as e:  # noqa: BLE001 - the models raise pydantic's or ValueError
        raise KubeError(f"{model}: {' '.join(str(e).split())}", file, where(())) from None
    back = client.sanitize_for_serialization(obj)
    lost = _difference(doc, back)
    if lost is not None:
        raise KubeError(f"the {model} model does not keep this field", file, where(lost), path_text(lost))
    for path, value, allowed in _enumerated(doc):
        if value not in allowed:
            raise KubeError(f"{value!r} is not one of {', '.join(repr(a) for a in allowed)}", file, where(path),
                            path_text(path))


ENUMS = {  # k8s.io/kubernetes pkg/apis/core/validation: what the API server accepts
    "restartPolicy": ("Always", "OnFailure", "Never"),
    "dnsPolicy": ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
    "imagePullPolicy": ("Always", "IfNotPresent", "Never"),
    "protocol": ("TCP", "UDP", "SCTP"),
    "hostPath.type": ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                      "BlockDevice"),
    "emptyDir.medium": ("", "Memory", "HugePages"),
}


def _enumerated(doc: dict):
    """(path, value, allowed) for the enumerated fields of a Pod's or a Deployment's pod spec."""
    if doc.get("kind") == "Pod":
        base, spec = ["spec"], doc.get("spec") or {}
    elif doc.get("kind") == "Deployment":
        base, spec = ["spec", "template", "spec"], ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        if "restartPolicy" in spec:
            yield base + ["restartPolicy"], spec["restartPolicy"], ("Always",)
    else:
        return
    for key in ("restartPolicy", "dnsPolicy"):
        if key in spec:
            yield base + [key], spec[key], ENUMS[key]
    for i, c in enumerate(spec.get("containers") or []):
        where = base + ["containers", i]
        if "imagePullPolicy" in c:
            yield where + ["imagePullPolicy"], c["imagePullPolicy"], ENUMS["imagePullPolicy"]
        for j, p in enumerate(c.get("ports") or []):
            if "protocol" in p:
                yield where + ["ports", j, "protocol"], p["protocol"], ENUMS["protocol"]
    for i, v in enumerate(spec.get("volumes") or []):
        for kind, key in (("hostPath", "type"), ("emptyDir", "medium")):
            if key in (v.get(kind) or {}):
                yield base + ["volumes", i, kind, key], v[kind][key], ENUMS[f"{kind}.{key}"]


def _difference(a, b, path=()):
    """The first path where ``a`` has something ``b`` lacks (None: nothing lost)."""
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return list(path)
        for k, v in a.items():
            if k not in b:
                return list(path) + [k]
            sub = _difference(v, b[k], path + (k,))
            if sub is not None:
                return sub
        return None
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return list(path)
        for i, (x, y) in enumerate(zip(a, b)):
            sub = _difference(x, y, path + (i,))
            if sub is not None:
                return sub
        return None
    return None if a == b or str(a) == str(b) else list(path)
