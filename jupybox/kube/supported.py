"""Which fields of a manifest ``kube play`` honours: everything else is named, in one line, and ignored.

A tree of allowed keys per kind: ``None`` accepts a key with all it holds, a dict says which keys
below it are honoured (lists are walked item by item with the same dict).
"""

from __future__ import annotations

META = {"name": None, "namespace": None, "labels": None, "annotations": None}
KEY_REF = {"name": None, "key": None, "optional": None}
ITEMS = {"key": None, "path": None, "mode": None}
CONTAINER = {
    "name": None, "image": None, "imagePullPolicy": None, "command": None, "args": None, "workingDir": None,
    "env": {"name": None, "value": None,
            "valueFrom": {"configMapKeyRef": KEY_REF, "secretKeyRef": KEY_REF, "fieldRef": {"fieldPath": None,
                                                                                             "apiVersion": None}}},
    "envFrom": {"prefix": None, "configMapRef": {"name": None, "optional": None},
                "secretRef": {"name": None, "optional": None}},
    "ports": {"containerPort": None, "hostPort": None, "hostIP": None, "protocol": None, "name": None},
    "resources": {"limits": {"memory": None, "cpu": None}, "requests": {"cpu": None}},
    "volumeMounts": {"name": None, "mountPath": None, "readOnly": None, "subPath": None},
    "securityContext": {"runAsUser": None, "runAsGroup": None, "capabilities": {"add": None, "drop": None},
                        "privileged": None, "readOnlyRootFilesystem": None},
    "livenessProbe": {"exec": {"command": None}, "periodSeconds": None, "timeoutSeconds": None,
                      "failureThreshold": None, "initialDelaySeconds": None},
    "stdin": None, "tty": None,
}
VOLUME = {
    "name": None,
    "persistentVolumeClaim": {"claimName": None, "readOnly": None},
    "hostPath": {"path": None, "type": None},
    "emptyDir": {"medium": None, "sizeLimit": None},
    "configMap": {"name": None, "items": ITEMS, "defaultMode": None, "optional": None},
    "secret": {"secretName": None, "items": ITEMS, "defaultMode": None, "optional": None},
}
POD_SPEC = {
    "containers": CONTAINER, "volumes": VOLUME, "hostname": None, "hostNetwork": None, "restartPolicy": None,
    "dnsPolicy": None, "dnsConfig": {"nameservers": None}, "hostAliases": {"ip": None, "hostnames": None},
    "securityContext": {"runAsUser": None, "runAsGroup": None}, "terminationGracePeriodSeconds": None,
}
TOP = {"apiVersion": None, "kind": None, "metadata": META}
KINDS = {
    "Pod": dict(TOP, spec=POD_SPEC),
    "Deployment": dict(TOP, spec={"replicas": None, "selector": None,
                                  "template": {"metadata": META, "spec": POD_SPEC}}),
    "ConfigMap": dict(TOP, data=None, binaryData=None, immutable=None),
    "Secret": dict(TOP, data=None, stringData=None, type=None, immutable=None),
    "Service": dict(TOP, spec={"selector": None, "type": None,
                               "ports": {"name": None, "port": None, "targetPort": None, "protocol": None,
                                         "nodePort": None}}),
    "PersistentVolumeClaim": dict(TOP, spec=None),  # a store's volume has no size, class or access mode
}


def unsupported(doc: dict) -> list[str]:
    """The paths of ``doc``'s fields that play does not honour (``spec.affinity``,
    ``spec.containers[0].readinessProbe``); the whole document for a kind it does not run."""
    allowed = KINDS.get(doc.get("kind"))
    if allowed is None:
        return [f"{doc.get('kind')} {((doc.get('metadata') or {}).get('name')) or ''}".strip()]
    out: list[str] = []
    _walk(doc, allowed, "", out)
    return out


def _walk(value, allowed, path: str, out: list[str]) -> None:
    if allowed is None:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, allowed, f"{path}[{i}]", out)
        return
    if not isinstance(value, dict):
        return
    for key, sub in value.items():
        where = f"{path}.{key}" if path else key
        if key not in allowed:
            out.append(where)
        else:
            _walk(sub, allowed[key], where, out)
