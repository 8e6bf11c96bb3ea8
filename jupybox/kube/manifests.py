"""Workloads -> Kubernetes manifests: a Pod each, or a Deployment and a Service (``--service``).

Field by field (the README's table is this one):

    jupybox                        Kubernetes (container, unless the pod is named)
    image                          image (a reference the cluster can pull; never ``host``)
    --entrypoint / command         command / args
    -e, --env-file                 env
    -w                             workingDir
    -u UID[:GID]                   securityContext.runAsUser / runAsGroup (a name: warned, left out)
    -m                             resources.limits.memory
    --cpus                         resources.limits.cpu (a CFS quota, as the kubelet sets it)
    --cpu-shares                   resources.requests.cpu (shares / 1024 CPUs: how the kubelet maps a request)
    --pids-limit, --memory-swap    none (the kubelet's podPidsLimit and swap settings are the node's): warned
    -v NAME:/p                     volumes: persistentVolumeClaim claimName NAME; an anonymous volume: emptyDir
    -v /host:/p                    volumes: hostPath (the node's directory, not the host's): warned
    --tmpfs /p:size=N              volumes: emptyDir medium Memory, sizeLimit N
    -p [IP:]HOST:CTR/proto         ports: containerPort, hostPort, hostIP, protocol (--service: Service ports)
    --cap-add / --cap-drop         securityContext.capabilities.add / drop
    --privileged                   securityContext.privileged
    --read-only                    securityContext.readOnlyRootFilesystem
    -i / -t                        stdin / tty
    --hostname                     pod: hostname
    --network host                 pod: hostNetwork; bridge and user networks: the pod network
    --dns / --add-host             pod: dnsConfig.nameservers (dnsPolicy None) / hostAliases
    --stop-timeout                 pod: terminationGracePeriodSeconds
    --restart                      pod: restartPolicy (no: Never, on-failure: OnFailure, always and
                                   unless-stopped: Always; a Deployment's is always Always)
    healthcheck                    livenessProbe (exec; CMD-SHELL as /bin/sh -c), periodSeconds,
                                   timeoutSeconds, failureThreshold, initialDelaySeconds (as podman)
    labels                         metadata.labels (those Kubernetes accepts; the others: annotations)
"""

from __future__ import annotations

import math
import re

from . import quantity
from .source import Workload

_LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                         r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")
RESTART = {"no": "Never", "on-failure": "OnFailure", "always": "Always", "unless-stopped": "Always"}
APP = "app.kubernetes.io/name"
COMPOSE_LABELS = "com.docker.compose."


class Generator:
    """Collects warnings (one line each) while it turns workloads into manifests."""

    def __init__(self, image_for=None):
        self.warnings: list[str] = []
        self.image_for = image_for or (lambda ref: ref)  # ref -> what the cluster pulls (--push)

    def warn(self, where: str, message: str) -> None:
        line = f"{where}: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    # -- documents ------------------------------------------------------------------------------
    def manifests(self, workloads: list[Workload], service: bool = False) -> list[dict]:
        out = []
        for w in workloads:
            pod = self.pod_spec(w, deployment=service)
            labels, annotations = self.metadata(w)
            if not service:
                if w.replicas > 1:
                    self.warn(w.origin, f"{w.replicas} containers described by one Pod (--service: a Deployment "
                                        f"with replicas: {w.replicas})")
                out.append({"apiVersion": "v1", "kind": "Pod",
                            "metadata": _meta(quantity.dns_label(w.name), labels, annotations), "spec": pod})
                continue
            name = quantity.dns_label(w.name)
            selector = {APP: name}
            template = {"metadata": _meta(None, dict(labels, **selector), annotations), "spec": pod}
            out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, selector, {}),
                        "spec": {"replicas": w.replicas, "selector": {"matchLabels": selector},
                                 "template": template}})
            ports = self.service_ports(w)
            if ports:
                out.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, selector, {}),
                            "spec": {"type": "NodePort", "selector": selector, "ports": ports}})
        return out

    def metadata(self, w: Workload) -> tuple[dict, dict]:
        labels, annotations = {}, {}
        for box in w.boxes:
            for key, value in (box.spec.get("labels") or {}).items():
                if key.startswith(COMPOSE_LABELS):
                    continue  # compose's own bookkeeping (project, config hash, files): nothing for a cluster
                if _LABEL_NAME.match(key) and len(key.rpartition("/")[2]) <= 63 and _LABEL_VALUE.match(str(value)):
                    labels[key] = str(value)
                else:
                    annotations[key] = str(value)
        if annotations:
            self.warn(w.origin, f"labels Kubernetes does not accept as labels kept as annotations: "
                                f"{', '.join(sorted(annotations))}")
        return labels, annotations

    def service_ports(self, w: Workload) -> list[dict]:
        ports = []
        for box in w.boxes:
            for p in box.spec.get("ports") or []:
                port = int(p.get("host_port") or 0) or int(p["container_port"])
                ports.append({"name": f"{p['protocol']}-{port}", "port": port,
                              "targetPort": int(p["container_port"]), "protocol": p["protocol"].upper()})
        return ports

    # -- the pod --------------------------------------------------------------------------------
    def pod_spec(self, w: Workload, deployment: bool) -> dict:
        pod: dict = {"containers": []}
        volumes: dict[str, dict] = {}
        first = w.boxes[0].spec
        names = set()
        for box in w.boxes:
            name = _unique(quantity.dns_label(box.name), names)
            pod["containers"].append({"name": name, **self.container(w, box, volumes, deployment)})
        if volumes:
            pod["volumes"] = list(volumes.values())
        if first.get("hostname"):
            pod["hostname"] = quantity.dns_label(first["hostname"])
        network = first.get("network") or "bridge"
        if network == "host":
            pod["hostNetwork"] = True
        elif network == "none":
            self.warn(w.origin, "--network none has no Kubernetes form: the pod gets the cluster's network")
        if first.get("network_aliases"):
            self.warn(w.origin, "network aliases: name the workload with a Service instead (--service)")
        if first.get("dns"):
            pod["dnsPolicy"] = "None"
            pod["dnsConfig"] = {"nameservers": list(first["dns"])}
        if first.get("add_hosts"):
            pod["hostAliases"] = _host_aliases(first["add_hosts"])
        restart = w.boxes[0].extras.get("restart")
        if restart:
            policy = RESTART[restart.partition(":")[0]]
            if restart.startswith("on-failure:"):
                self.warn(w.origin, f"restart {restart}: Kubernetes restarts without a maximum count")
            if deployment and policy != "Always":
                self.warn(w.origin, f"restart {restart}: a Deployment's pods always restart")
            elif not deployment:
                pod["restartPolicy"] = policy
        elif not deployment:
            pod["restartPolicy"] = "Never"  # docker's default: no restart
        grace = w.boxes[0].extras.get("stop_timeout")
        if grace is not None:
            pod["terminationGracePeriodSeconds"] = max(0, math.ceil(float(grace)))
        return pod

    def container(self, w: Workload, box, volumes: dict, deployment: bool) -> dict:
        spec = box.spec
        where = w.origin
        c: dict = {"image": self.image_for(spec["image"])}
        entrypoint, command = spec.get("entrypoint"), list(spec.get("command") or [])
        if entrypoint:  # docker: an --entrypoint drops the image's CMD; Kubernetes: a command does too
            c["command"] = list(entrypoint)
            if command:
                c["args"] = command
        elif entrypoint == []:  # no entrypoint at all: the command is the program
            if command:
                c["command"] = command
            else:
                self.warn(where, "an empty --entrypoint without a command has no Kubernetes form")
        elif command:  # the image's ENTRYPOINT, this CMD
            c["args"] = command
        if spec.get("env"):
            c["env"] = [{"name": k, "value": str(v)} for k, v in spec["env"].items()]
        if spec.get("workdir"):
            c["workingDir"] = spec["workdir"]
        resources = self.resources(where, spec.get("limits") or {})
        if resources:
            c["resources"] = resources
        ports = []
        for p in spec.get("ports") or []:
            port = {"containerPort": int(p["container_port"]), "protocol": p["protocol"].upper()}
            if p.get("host_port") and not deployment:
                port["hostPort"] = int(p["host_port"])
                if p.get("host_ip"):
                    port["hostIP"] = p["host_ip"]
            ports.append(port)
        if spec.get("publish_all"):
            self.warn(where, "-P publishes the image's ports on ports the kernel picks: list them with -p")
        if ports:
            c["ports"] = ports
        mounts = [self.mount(where, m, volumes) for m in spec.get("mounts") or []]
        if mounts:
            c["volumeMounts"] = mounts
        security = self.security(where, spec)
        if security:
            c["securityContext"] = security
        if spec.get("interactive"):
            c["stdin"] = True
        if spec.get("tty"):
            c["tty"] = True
        probe = self.probe(where, box.extras.get("healthcheck"))
        if probe:
            c["livenessProbe"] = probe
        if box.extras.get("stop_signal") not in (None, "SIGTERM", "TERM", "15"):
            self.warn(where, f"stop signal {box.extras['stop_signal']}: Kubernetes stops with SIGTERM")
        return c

    def resources(self, where: str, limits: dict) -> dict:
        out: dict = {}
        if limits.get("memory"):
            out.setdefault("limits", {})["memory"] = quantity.memory(int(limits["memory"]))
        if limits.get("cpus"):
            out.setdefault("limits", {})["cpu"] = quantity.cpu(float(limits["cpus"]))
        if limits.get("cpu_shares"):
            out.setdefault("requests", {})["cpu"] = quantity.cpu(max(int(limits["cpu_shares"]), 2) / 1024)
        if limits.get("pids"):
            self.warn(where, f"--pids-limit {limits['pids']}: Kubernetes limits pids per pod on the node "
                             "(the kubelet's podPidsLimit), not in the manifest")
        if limits.get("memory_swap") not in (None, 0):
            self.warn(where, "--memory-swap: swap is the node's setting in Kubernetes")
        return out

    def mount(self, where: str, m: dict, volumes: dict) -> dict:
        dest, kind, source = m["destination"], m["type"], m.get("source") or ""
        if kind == "volume" and source and not _ANONYMOUS.match(source):
            claim = quantity.dns_label(source, 253)
            if claim != source:
                self.warn(where, f"volume {source}: claimed as {claim} (a Kubernetes name)")
            vol = {"persistentVolumeClaim": {"claimName": claim}}
            if m.get("readonly"):
                vol["persistentVolumeClaim"]["readOnly"] = True
        elif kind == "volume":
            vol = {"emptyDir": {}}
        elif kind == "bind":
            self.warn(where, f"bind mount {source}: a hostPath, the directory of whichever node runs the pod")
            vol = {"hostPath": {"path": source}}
        else:
            size = next((o.partition("=")[2] for o in m.get("options") or [] if o.startswith("size=")), None)
            vol = {"emptyDir": {"medium": "Memory"}}
            if size:
                vol["emptyDir"]["sizeLimit"] = quantity.memory(_size(size))
        name = _volume_name(vol, dest, volumes)
        volumes.setdefault(name, {"name": name, **vol})
        out = {"name": name, "mountPath": dest}
        if m.get("readonly"):
            out["readOnly"] = True
        return out

    def security(self, where: str, spec: dict) -> dict:
        out: dict = {}
        user = spec.get("user") or ""
        if user:
            uid, _, gid = user.partition(":")
            if uid.isdigit() and (not gid or gid.isdigit()):
                out["runAsUser"] = int(uid)
                if gid:
                    out["runAsGroup"] = int(gid)
            else:
                self.warn(where, f"user {user!r}: Kubernetes needs numeric ids (runAsUser), left out")
        caps = {}
        if spec.get("cap_add"):
            caps["add"] = [_cap(c) for c in spec["cap_add"]]
        if spec.get("cap_drop"):
            caps["drop"] = [_cap(c) for c in spec["cap_drop"]]
        if caps:
            out["capabilities"] = caps
        if spec.get("privileged"):
            out["privileged"] = True
        if spec.get("readonly_rootfs"):
            out["readOnlyRootFilesystem"] = True
        return out

    def probe(self, where: str, hc: dict | None) -> dict | None:
        if not hc or not hc.get("test"):
            return None
        test = list(hc["test"])
        if test[0] == "NONE":
            return None
        if test[0] == "CMD-SHELL":
            command = ["/bin/sh", "-c", " ".join(test[1:])]
        elif test[0] == "CMD":
            command = test[1:]
        else:
            command = ["/bin/sh", "-c", " ".join(test)]
        probe: dict = {"exec": {"command": command}}
        for key, field in (("interval", "periodSeconds"), ("timeout", "timeoutSeconds"),
                           ("start_period", "initialDelaySeconds")):
            if hc.get(key):
                probe[field] = max(1, math.ceil(float(hc[key])))
        if hc.get("retries"):
            probe["failureThreshold"] = int(hc["retries"])
        return probe


def _meta(name: str | None, labels: dict, annotations: dict) -> dict:
    out: dict = {}
    if name:
        out["name"] = name
    if labels:
        out["labels"] = labels
    if annotations:
        out["annotations"] = annotations
    return out


def _unique(name: str, taken: set) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name[:60]}-{n}"
    taken.add(out)
    return out


def _volume_name(vol: dict, dest: str, volumes: dict) -> str:
    """One pod volume per claim or host path (two mounts of one source share it)."""
    for name, existing in volumes.items():
        if {k: v for k, v in existing.items() if k != "name"} == vol and "emptyDir" not in vol:
            return name
    return _unique(quantity.dns_label(dest.strip("/").replace("/", "-") or "root"), set(volumes))


def _host_aliases(items: list[str]) -> list[dict]:
    by_ip: dict[str, list[str]] = {}
    for item in items:
        host, _, ip = item.partition(":")  # HOST:IP, and an IPv6 address keeps its colons
        by_ip.setdefault(ip, []).append(host)
    return [{"ip": ip, "hostnames": hosts} for ip, hosts in by_ip.items()]


def _cap(name: str) -> str:
    name = name.upper()
    return name[4:] if name.startswith("CAP_") else name


def _size(text: str) -> int:
    from ..units import parse_size

    return int(parse_size(text, "tmpfs size"))
