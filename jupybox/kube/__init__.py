"""Kubernetes from the same options: ``jupybox kube generate | play | down``.

    jupybox kube generate web -f web.yaml               # a Pod that says what container web says
    jupybox kube generate shop --service --push 127.0.0.1:5000 -f shop.yaml   # Deployments + Services
    jupybox kube play web.yaml; jupybox kube down web.yaml

    source.py     containers, compose projects and compose files -> workloads of ContainerSpecs
    manifests.py  workloads -> Pods, or Deployments and Services (the field-by-field table)
    validate.py   the Kubernetes OpenAPI schema and the official client's models, no cluster needed
    supported.py  the fields play honours; the rest is named in one line
    podspec.py    one pod's spec -> containers, mounts and volumes to make
    runner.py     play and down: ConfigMaps, Secrets, claims, Pods, Deployments (replicas), Services
    quantity.py   256Mi, 500m, DNS-1123 names
"""

from __future__ import annotations

from .errors import KubeError


def generate(names=(), *, compose_files=(), project_name=None, service: bool = False, push: str | None = None,
             root=None, progress=None) -> tuple[list[dict], list[str]]:
    """The manifests (validated) for containers or compose projects ``names`` or ``compose_files``,
    and the warnings (one line each). ``push``: a registry the images are pushed to first (the
    manifests then name them there)."""
    from . import source, validate
    from .manifests import Generator

    workloads = []
    if names:
        workloads += source.from_names(list(names), root=root)
    if compose_files:
        workloads += source.from_compose_files(list(compose_files), project_name)
    if not workloads:
        raise KubeError("nothing to generate: name a container or a compose project (or --compose-file)")
    pushed: dict[str, str] = {}
    for w in workloads:
        for box in w.boxes:
            ref = box.spec["image"]
            if ref not in pushed:
                pushed[ref] = _pullable(ref, push, root, progress)
    gen = Generator(image_for=pushed.__getitem__)
    docs = gen.manifests(workloads, service=service)
    for doc in docs:
        validate.check(doc)
    if not push:
        for ref in sorted(set(pushed.values())):
            gen.warnings.append(f"image {ref}: the cluster must be able to pull it (--push REGISTRY pushes it first)")
    return docs, gen.warnings


def _pullable(ref: str, registry: str | None, root, progress) -> str:
    """What the manifest names for the local image ``ref`` (pushed to ``registry`` first if given)."""
    from ..api import engine
    from ..image.host import is_host_reference
    from ..image.reference import parse_reference

    if is_host_reference(ref):
        raise KubeError("the host image is the host's own /usr and Python, not an image a cluster can pull: "
                        "build one (jupybox build) for the cluster")
    r = parse_reference(ref)
    if not registry:
        return str(r)
    from ..registry import push

    dest = f"{registry.rstrip('/')}/{r.repository}:{r.tag or 'latest'}"
    push(engine(root).store, dest, source=ref, progress=progress)
    return dest


def to_yaml(docs: list[dict]) -> str:
    import yaml

    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


def play(path: str, root=None, warn=None) -> list[str]:
    from .runner import Play

    return Play(path, root, warn).play()


def down(path: str, root=None, warn=None, volumes: bool = False) -> list[str]:
    from .runner import Play

    return Play(path, root, warn).down(volumes=volumes)


__all__ = ["KubeError", "down", "generate", "play", "to_yaml"]
