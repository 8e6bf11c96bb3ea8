"""One pod's spec -> the containers and volumes ``kube play`` makes for it (nothing is made here).

The mapping is ``generate``'s read backwards (see its table): command/args -> entrypoint/command,
resources.limits -> memory/cpus, requests.cpu -> cpu shares, securityContext -> user,
capabilities, privileged, read-only root, hostPort -> a published port, livenessProbe (exec) ->
healthcheck, restartPolicy -> restart, hostNetwork -> the host's network. Volumes:

    persistentVolumeClaim   the named volume claimName (made if missing, kept by ``down``)
    hostPath                a bind mount (DirectoryOrCreate / FileOrCreate make what is missing)
    emptyDir                a volume of the pod (shared by its containers); medium Memory: a tmpfs
    configMap / secret      a volume of the pod holding the files (items, modes), mounted read-only

The containers of a pod do not share a network namespace (jupybox has no ``container:`` network):
they reach each other by the pod's name and their own on the play's network, not on localhost.
"""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass, field

from . import quantity
from .errors import KubeError

RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}


@dataclass
class VolumePlan:
    name: str
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # relative path -> (content, mode)


@dataclass
class MountPlan:
    kind: str  # "volume" (a named volume), "bind", "tmpfs"
    source: str
    destination: str
    readonly: bool = False
    subpath: str = ""
    size: int | None = None


@dataclass
class ContainerPlan:
    name: str
    image: str
    pull: str  # Always, IfNotPresent, Never
    command: list | None
    options: dict
    mounts: list[MountPlan]


@dataclass
class PodPlan:
    name: str
    containers: list[ContainerPlan]
    volumes: list[VolumePlan]


class Data:
    """The play's ConfigMaps and Secrets: name -> {key: bytes}."""

    def __init__(self):
        self.configmaps: dict[str, dict[str, bytes]] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}

    def add(self, doc: dict) -> None:
        name = doc["metadata"]["name"]
        if doc["kind"] == "ConfigMap":
            values = {k: str(v).encode() for k, v in (doc.get("data") or {}).items()}
            values.update({k: _b64(v, f"ConfigMap {name} binaryData.{k}") for k, v in
                           (doc.get("binaryData") or {}).items()})
            self.configmaps[name] = values
        else:
            values = {k: _b64(v, f"Secret {name} data.{k}") for k, v in (doc.get("data") or {}).items()}
            values.update({k: str(v).encode() for k, v in (doc.get("stringData") or {}).items()})
            self.secrets[name] = values

    def get(self, kind: str, name: str, optional: bool = False) -> dict[str, bytes] | None:
        found = (self.configmaps if kind == "ConfigMap" else self.secrets).get(name)
        if found is None and not optional:
            raise KubeError(f"{kind} {name} is not in the file")
        return found


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise KubeError(f"{what}: not base64") from None


def translate(pod: str, spec: dict, labels: dict, data: Data, warn) -> PodPlan:
    """``pod``: the instance's name (a Deployment's replica: ``NAME-N``); ``labels`` for its containers."""
    volumes, mounts_of = _volumes(pod, spec.get("volumes") or [], data)
    pod_security = spec.get("securityContext") or {}
    plans, seen = [], set()
    for c in spec["containers"]:
        opts: dict = {"labels": dict(labels), "hostname": spec.get("hostname") or quantity.dns_label(pod)}
        if spec.get("hostNetwork"):
            opts["network"] = "host"
            opts.pop("hostname")
        if spec.get("restartPolicy"):
            opts["restart"] = RESTART[spec["restartPolicy"]]
        if spec.get("terminationGracePeriodSeconds") is not None:
            opts["stop_timeout"] = float(spec["terminationGracePeriodSeconds"])
        if (spec.get("dnsConfig") or {}).get("nameservers"):
            opts["dns"] = list(spec["dnsConfig"]["nameservers"])
        if spec.get("hostAliases"):
            opts["add_hosts"] = [f"{h}:{a['ip']}" for a in spec["hostAliases"] for h in a.get("hostnames") or []]
        entrypoint, args = c.get("command"), c.get("args")
        if entrypoint is not None:
            opts["entrypoint"] = list(entrypoint)
        if c.get("workingDir"):
            opts["workdir"] = c["workingDir"]
        env = _env(pod, c, data, warn)
        if env:
            opts["env"] = env
        opts.update(_resources(c.get("resources") or {}))
        opts.update(_security(pod_security, c.get("securityContext") or {}))
        ports = [{"host_ip": p.get("hostIP") or "", "host_port": int(p["hostPort"]),
                  "container_port": int(p["containerPort"]), "protocol": (p.get("protocol") or "TCP").lower()}
                 for p in c.get("ports") or [] if p.get("hostPort")]
        if ports:
            opts["ports"] = ports
        if c.get("stdin"):
            opts["interactive"] = True
        if c.get("tty"):
            opts["tty"] = True
        probe = c.get("livenessProbe")
        if probe and "exec" in probe:
            opts["healthcheck"] = _healthcheck(probe)
        elif probe:
            warn(f"Pod {pod}: container {c['name']}: only exec probes are run")
        mounts = []
        for vm in c.get("volumeMounts") or []:
            if vm["name"] not in mounts_of:
                raise KubeError(f"Pod {pod}: container {c['name']} mounts {vm['name']}, which the pod does not have")
            base = mounts_of[vm["name"]]
            mounts.append(MountPlan(base.kind, base.source, vm["mountPath"], base.readonly or bool(vm.get("readOnly")),
                                    vm.get("subPath") or "", base.size))
        name = f"{pod}-{c['name']}"
        if name in seen:
            raise KubeError(f"Pod {pod}: two containers named {c['name']}")
        seen.add(name)
        plans.append(ContainerPlan(name, c["image"], c.get("imagePullPolicy") or "IfNotPresent",
                                   list(args) if args is not None else ([] if entrypoint is not None else None),
                                   opts, mounts))
    return PodPlan(pod, plans, volumes)


def _volumes(pod: str, items: list[dict], data: Data) -> tuple[list[VolumePlan], dict[str, MountPlan]]:
    plans, mounts = [], {}
    for v in items:
        name = v["name"]
        own = f"{pod}-{name}"
        if "persistentVolumeClaim" in v:
            pvc = v["persistentVolumeClaim"]
            mounts[name] = MountPlan("volume", pvc["claimName"], "", bool(pvc.get("readOnly")))
        elif "hostPath" in v:
            mounts[name] = MountPlan("bind", _host_path(pod, v["hostPath"]), "")
        elif "emptyDir" in v:
            ed = v["emptyDir"] or {}
            if ed.get("medium") == "Memory":
                size = int(quantity.parse(ed["sizeLimit"], f"{name}.sizeLimit")) if ed.get("sizeLimit") else None
                mounts[name] = MountPlan("tmpfs", "", "", size=size)
            else:
                plans.append(VolumePlan(own))
                mounts[name] = MountPlan("volume", own, "")
        elif "configMap" in v or "secret" in v:
            kind = "ConfigMap" if "configMap" in v else "Secret"
            src = v.get("configMap") or v.get("secret")
            values = data.get(kind, src.get("name") or src.get("secretName"), bool(src.get("optional"))) or {}
            mode = src.get("defaultMode", 0o644)
            files = {}
            for item in src.get("items") or [{"key": k, "path": k} for k in sorted(values)]:
                if item["key"] not in values:
                    raise KubeError(f"Pod {pod}: volume {name}: {kind} has no key {item['key']}")
                files[_relative(item["path"], f"volume {name}")] = (values[item["key"]], item.get("mode", mode))
            plans.append(VolumePlan(own, files))
            mounts[name] = MountPlan("volume", own, "", readonly=True)
        else:
            kinds = sorted(k for k in v if k != "name")
            raise KubeError(f"Pod {pod}: volume {name}: {', '.join(kinds)} volumes are not supported "
                            "(persistentVolumeClaim, hostPath, emptyDir, configMap, secret are)")
    return plans, mounts


def _host_path(pod: str, hp: dict) -> str:
    path, kind = hp["path"], hp.get("type") or ""
    if kind == "DirectoryOrCreate":
        os.makedirs(path, exist_ok=True)
    elif kind == "FileOrCreate" and not os.path.exists(path):
        open(path, "a").close()
    elif kind == "Directory" and not os.path.isdir(path):
        raise KubeError(f"Pod {pod}: hostPath {path} is not a directory")
    elif kind == "File" and not os.path.isfile(path):
        raise KubeError(f"Pod {pod}: hostPath {path} is not a file")
    return path


def _relative(path: str, what: str) -> str:
    norm = os.path.normpath(path)
    if os.path.isabs(norm) or norm.startswith(".."):
        raise KubeError(f"{what}: path {path!r} leaves the volume")
    return norm


def _env(pod: str, c: dict, data: Data, warn) -> dict:
    env: dict = {}
    for src in c.get("envFrom") or []:
        kind = "ConfigMap" if "configMapRef" in src else "Secret"
        ref = src.get("configMapRef") or src.get("secretRef")
        values = data.get(kind, ref["name"], bool(ref.get("optional"))) or {}
        env.update({(src.get("prefix") or "") + k: v.decode(errors="replace") for k, v in values.items()})
    for item in c.get("env") or []:
        if "valueFrom" not in item:
            env[item["name"]] = str(item.get("value", ""))
            continue
        vf = item["valueFrom"]
        if "fieldRef" in vf:
            if vf["fieldRef"]["fieldPath"] == "metadata.name":
                env[item["name"]] = pod
            else:
                warn(f"Pod {pod}: env {item['name']}: only fieldRef metadata.name is known here")
            continue
        kind = "ConfigMap" if "configMapKeyRef" in vf else "Secret"
        ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef")
        values = data.get(kind, ref["name"], bool(ref.get("optional")))
        if values is None or ref["key"] not in values:
            if not ref.get("optional"):
                raise KubeError(f"Pod {pod}: env {item['name']}: {kind} {ref['name']} has no key {ref['key']}")
            continue
        env[item["name"]] = values[ref["key"]].decode(errors="replace")
    return env


def _resources(res: dict) -> dict:
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    out: dict = {}
    if "memory" in limits:
        out["memory"] = int(quantity.parse(limits["memory"], "resources.limits.memory"))
    if "cpu" in limits:
        out["cpus"] = quantity.parse(limits["cpu"], "resources.limits.cpu")
    if "cpu" in requests:
        out["cpu_shares"] = max(2, math.floor(quantity.parse(requests["cpu"], "resources.requests.cpu") * 1024 + 0.5))
    return out


def _security(pod: dict, ctr: dict) -> dict:
    out: dict = {}
    uid = ctr.get("runAsUser", pod.get("runAsUser"))
    gid = ctr.get("runAsGroup", pod.get("runAsGroup"))
    if uid is not None:
        out["user"] = f"{uid}:{gid}" if gid is not None else str(uid)
    caps = ctr.get("capabilities") or {}
    if caps.get("add"):
        out["cap_add"] = list(caps["add"])
    if caps.get("drop"):
        out["cap_drop"] = list(caps["drop"])
    if ctr.get("privileged"):
        out["privileged"] = True
    if ctr.get("readOnlyRootFilesystem"):
        out["read_only"] = True
    return out


def _healthcheck(probe: dict) -> dict:
    command = list(probe["exec"]["command"])
    test = ["CMD-SHELL", command[2]] if command[:2] == ["/bin/sh", "-c"] and len(command) == 3 else ["CMD"] + command
    out: dict = {"test": test}
    for field_, key in (("periodSeconds", "interval"), ("timeoutSeconds", "timeout"),
                        ("initialDelaySeconds", "start_period")):
        if field_ in probe:
            out[key] = float(probe[field_])
    if "failureThreshold" in probe:
        out["retries"] = int(probe["failureThreshold"])
    return out
