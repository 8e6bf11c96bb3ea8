"""``kube play FILE`` and ``kube down FILE``: a manifest's Pods and Deployments as local containers.

What play does, like podman's ``kube play``:

1. reads every YAML document of the file (compose's reader: line numbers, size, depth and alias
   limits), checks each object of a kind it knows against the Kubernetes schema and models
   (``validate``), and names in one line what it will not honour (``supported``);
2. ConfigMaps and Secrets become data for env (``valueFrom``, ``envFrom``) and files (volumes);
   PersistentVolumeClaims named volumes; Services name the pods they select (network aliases);
3. each Pod, and each replica of a Deployment (``NAME-0``, ``NAME-1``, ...), becomes one container
   per pod container (``POD-CONTAINER``), on the play's network ``kube-<file name>`` (a user
   network: the containers find each other by pod, container and Service names) unless
   ``hostNetwork``; images are pulled when missing (``imagePullPolicy: Always``: always);
4. everything carries the labels ``io.jupybox.kube.object`` (``Pod/web``) and
   ``io.jupybox.kube.file``: ``down`` removes the containers of the file's objects, the volumes
   play made for them (ConfigMap, Secret, emptyDir) and the network. Claimed volumes stay.

A failure half-way removes what the play made: nothing is left.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import errors
from . import podspec, quantity, supported, validate
from .errors import KubeError

OBJECT = "io.jupybox.kube.object"
FILE = "io.jupybox.kube.file"
POD = "io.jupybox.kube.pod"
RUNNABLE = ("Pod", "Deployment")


def read(path: str) -> list:
    """The file's documents (data and the line of every key), each checked (``validate``)."""
    from . import yamlfile

    docs = yamlfile.load_file(path)
    if not docs:
        raise KubeError("no Kubernetes object in the file", path)
    for doc in docs:
        if (doc.data.get("apiVersion"), doc.data.get("kind")) in validate.KINDS:
            validate.check(doc.data, path, doc.line_of)
    return docs


def network_name(path: str) -> str:
    return "kube-" + quantity.dns_label(Path(path).stem, 40)


def object_ids(docs) -> set[str]:
    return {f"{d.data.get('kind')}/{(d.data.get('metadata') or {}).get('name')}" for d in docs
            if d.data.get("kind") in RUNNABLE}


class Play:
    def __init__(self, path: str, root=None, warn=None):
        from ..compose.runtime import Runtime

        self.path = os.path.abspath(path)
        self.shown = path
        self.root = root
        self.warn = warn or (lambda line: None)
        self.rt = Runtime(root, warn=self.warn)
        self.made_containers: list = []
        self.made_volumes: list[str] = []
        self.made_network: str | None = None

    # -- play -----------------------------------------------------------------------------------
    def play(self) -> list[str]:
        docs = read(self.shown)
        ignored = [_ignored(d.data) for d in docs]
        ignored = [line for line in ignored if line]
        if ignored:
            self.warn(f"{self.shown}: not supported, ignored: {'; '.join(ignored)}")
        data = podspec.Data()
        for d in docs:
            if d.data.get("kind") in ("ConfigMap", "Secret"):
                data.add(d.data)
        pods = self._pods(docs, data)
        try:
            for d in docs:
                if d.data.get("kind") == "PersistentVolumeClaim":
                    self.rt.volumes().ensure(d.data["metadata"]["name"])
            for pod, aliases in pods:
                self._run_pod(pod, aliases)
        except BaseException:
            self._undo()
            raise
        return [c.name for c in self.made_containers]

    def _pods(self, docs, data) -> list[tuple[podspec.PodPlan, list[str]]]:
        services = [d.data for d in docs if d.data.get("kind") == "Service"]
        out = []
        for d in docs:
            kind, meta = d.data.get("kind"), d.data.get("metadata") or {}
            if kind not in RUNNABLE:
                continue
            name = meta["name"]
            if kind == "Pod":
                instances = [(name, meta, d.data["spec"])]
            else:
                template = d.data["spec"]["template"]
                replicas = d.data["spec"].get("replicas", 1)
                instances = [(f"{name}-{i}", template.get("metadata") or {}, template["spec"]) for i in range(replicas)]
                if replicas > 1 and any(p.get("hostPort") for c in template["spec"]["containers"]
                                        for p in c.get("ports") or []):
                    raise KubeError(f"Deployment {name}: {replicas} replicas cannot share a hostPort", self.shown,
                                    d.line_of(("spec", "replicas")))
            for pod, pmeta, spec in instances:
                labels = {str(k): str(v) for k, v in {**(pmeta.get("annotations") or {}),
                                                      **(pmeta.get("labels") or {})}.items()}
                labels.update({OBJECT: f"{kind}/{name}", FILE: self.path, POD: pod})
                plan = podspec.translate(pod, spec, labels, data, self.warn)
                aliases = [name] + [s["metadata"]["name"] for s in services if _selects(s, pmeta.get("labels") or {})]
                out.append((plan, aliases))
        return out

    def _run_pod(self, pod: podspec.PodPlan, aliases: list[str]) -> None:
        labels = {OBJECT: pod.containers[0].options["labels"][OBJECT], FILE: self.path, POD: pod.name}
        for v in pod.volumes:
            self._volume(v, labels)
        for c in pod.containers:
            options = dict(c.options)
            if options.get("network") != "host":
                options["network"] = self._network()
                options["network_aliases"] = sorted({pod.name, c.name, *aliases})
            options["name"] = c.name
            options["volumes"] = [self._mount(m) for m in c.mounts if m.kind != "tmpfs"]
            options["tmpfs"] = [f"{m.destination}:size={m.size}" if m.size else m.destination
                                for m in c.mounts if m.kind == "tmpfs"]
            for option in ("restart", "healthcheck", "stop_timeout"):
                if option in options and not self.rt.accepts(option, options[option]):
                    self.rt.warn_once(option, f"the runtime does not take {option} yet: not applied")
                    options.pop(option)
            self._image(c)
            created = self.rt.create(c.image, c.command, options, [])
            self.made_containers.append(created)
            self.rt.start(created)

    def _image(self, c: podspec.ContainerPlan) -> None:
        have = self.rt.has_image(c.image)
        if c.pull == "Never" and not have:
            raise KubeError(f"container {c.name}: image {c.image} is not in the store (imagePullPolicy: Never)")
        if c.pull == "Always" or not have:
            self.rt.pull(c.image)

    def _volume(self, plan: podspec.VolumePlan, labels: dict) -> None:
        vols = self.rt.volumes()
        try:
            vols.get(plan.name)
            raise KubeError(f"volume {plan.name} exists already: kube down {self.shown} first")
        except errors.VolumeNotFound:
            pass
        vol = vols.ensure(plan.name, labels)
        self.made_volumes.append(plan.name)
        for rel, (content, mode) in plan.files.items():
            target = vol.data / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o777)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.chmod(target, mode & 0o777)

    def _mount(self, m: podspec.MountPlan):
        from ..runtime.spec import Mount

        if m.kind == "volume" and not m.subpath:
            return Mount(destination=m.destination, source=m.source, type="volume", readonly=m.readonly)
        base = str(self.rt.volumes().ensure(m.source).data) if m.kind == "volume" else m.source
        source = os.path.join(base, podspec._relative(m.subpath, f"subPath of {m.destination}")) if m.subpath else base
        return Mount(destination=m.destination, source=source, type="bind", readonly=m.readonly)

    def _network(self) -> str:
        name = network_name(self.path)
        nets = self.rt.networks()
        net = nets.load(name)
        if net is None:
            nets.create(name, labels={FILE: self.path})
            self.made_network = name
        elif (net.get("labels") or {}).get(FILE) != self.path:
            raise KubeError(f"network {name} exists and was not made for {self.shown}")
        return name

    def _undo(self) -> None:
        for c in self.made_containers:
            self.rt.remove(c)
        for name in self.made_volumes:
            self.rt.remove_volume(name)
        if self.made_network:
            self.rt.remove_network(self.made_network)

    # -- down -----------------------------------------------------------------------------------
    def down(self, volumes: bool = False) -> list[str]:
        """Remove the containers of the file's Pods and Deployments, the volumes play made for them,
        the play's network; with ``volumes``, the claimed volumes too. -> the removed containers."""
        docs = read(self.shown)
        ids = object_ids(docs)
        removed = []
        for c in self.rt.api.containers(all=True, root=self.root):
            try:
                labels = c.config["spec"].get("labels") or {}
            except errors.ContainerNotFound:
                continue
            if labels.get(OBJECT) in ids:
                self.rt.stop(c)
                self.rt.remove(c)
                removed.append(c.name)
        for vol in self.rt.volumes().list():
            if (vol.inspect().get("Labels") or {}).get(OBJECT) in ids:
                self.rt.remove_volume(vol.name)
        if volumes:
            for d in docs:
                if d.data.get("kind") == "PersistentVolumeClaim":
                    try:
                        self.rt.remove_volume(d.data["metadata"]["name"])
                    except errors.Conflict:
                        self.warn(f"volume {d.data['metadata']['name']} is in use: kept")
        net = self.rt.networks().load(network_name(self.path))
        if net is not None and (net.get("labels") or {}).get(FILE) == self.path:
            try:
                self.rt.remove_network(net["name"])
            except errors.Conflict:
                self.warn(f"network {net['name']} is still in use: kept")
        return removed


def _ignored(doc: dict) -> str:
    """``Pod/web: spec.affinity, ...`` for what play will not honour in ``doc`` ('' when nothing)."""
    paths = supported.unsupported(doc)
    if doc.get("kind") == "Service":  # an alias reaches the container's own port, not a Service port
        paths += [f"spec.ports[{i}].port" for i, p in enumerate((doc.get("spec") or {}).get("ports") or [])
                  if p.get("targetPort") not in (None, p.get("port"))]
    if not paths:
        return ""
    if doc.get("kind") not in supported.KINDS:
        return paths[0]
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}: {', '.join(paths)}"


def _selects(service: dict, labels: dict) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
