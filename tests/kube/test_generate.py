"""kube generate: what a container (or a compose service) says, field by field, in manifests that the
Kubernetes schema and the official client's models accept; and what the validation refuses."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

pytest.importorskip("kubernetes")
pytest.importorskip("kubernetes_validate")

from jupybox import kube  # noqa: E402
from jupybox.kube import validate  # noqa: E402
from jupybox.kube.errors import KubeError  # noqa: E402
from jupybox.kube.quantity import dns_label  # noqa: E402

COMPOSE = """\
services:
  web:
    image: busybox:latest
    command: httpd -f -p 8080
    ports: ["127.0.0.1:18080:8080"]
    environment: {GREETING: hello}
    volumes: ["pages:/www:ro", "/srv/shared:/shared"]
    tmpfs: ["/run:size=1m"]
    mem_limit: 64m
    cpus: 0.5
    cpu_shares: 512
    user: "1000:1000"
    cap_drop: [NET_RAW]
    read_only: true
    restart: on-failure
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/"]
      interval: 10s
      timeout: 2s
      retries: 3
      start_period: 1500ms
  worker:
    image: busybox:latest
    command: sleep 3600
    deploy: {replicas: 3}
volumes:
  pages:
"""


@pytest.fixture
def compose_file(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(COMPOSE)
    return str(path)


def test_a_compose_service_becomes_a_pod_field_by_field(compose_file):
    docs, warnings = kube.generate(compose_files=[compose_file])
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("Pod", "web"), ("Pod", "worker")]
    pod = docs[0]
    assert pod["metadata"]["name"] == "web"
    c = pod["spec"]["containers"][0]
    assert c == {
        "name": "web", "image": "docker.io/library/busybox:latest", "args": ["httpd", "-f", "-p", "8080"],
        "env": [{"name": "GREETING", "value": "hello"}],
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "500m"}},
        "ports": [{"containerPort": 8080, "protocol": "TCP", "hostPort": 18080, "hostIP": "127.0.0.1"}],
        "volumeMounts": [{"name": "www", "mountPath": "/www", "readOnly": True},
                         {"name": "shared", "mountPath": "/shared"}, {"name": "run", "mountPath": "/run"}],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["NET_RAW"]},
                            "readOnlyRootFilesystem": True},
        "livenessProbe": {"exec": {"command": ["/bin/sh", "-c", "wget -q -O- http://127.0.0.1:8080/"]},
                          "periodSeconds": 10, "timeoutSeconds": 2, "initialDelaySeconds": 2,
                          "failureThreshold": 3},
    }
    project = compose_file.rsplit("/", 2)[-2]
    assert pod["spec"]["volumes"] == [
        {"name": "www", "persistentVolumeClaim": {"claimName": dns_label(f"{project}_pages"), "readOnly": True}},
        {"name": "shared", "hostPath": {"path": "/srv/shared"}},
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    text = "\n".join(warnings)
    assert "bind mount /srv/shared: a hostPath" in text
    assert "service worker: 3 containers described by one Pod" in text
    assert "the cluster must be able to pull it" in text
    import os
    assert not os.path.exists("/srv/shared")  # generating makes nothing


def test_with_service_a_deployment_of_the_replicas_and_a_service(compose_file):
    docs, _ = kube.generate(compose_files=[compose_file], service=True)
    deployment, service, workers = docs
    assert (workers["kind"], workers["spec"]["replicas"]) == ("Deployment", 3)  # no ports: no Service
    assert (deployment["kind"], deployment["spec"]["replicas"]) == ("Deployment", 1)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == selector
    assert "restartPolicy" not in deployment["spec"]["template"]["spec"]  # a Deployment's is Always
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]  # the Service publishes
    assert service["spec"] == {"type": "NodePort", "selector": selector,
                               "ports": [{"name": "tcp-18080", "port": 18080, "targetPort": 8080, "protocol": "TCP"}]}


def test_the_cli_writes_yaml_that_reads_back(compose_file, tmp_path):
    out = tmp_path / "out.yaml"
    proc = subprocess.run([sys.executable, "-m", "jupybox", "kube", "generate", "--compose-file", compose_file,
                           "-s", "-f", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "Deployment"]
    for doc in docs:
        validate.check(doc)


def test_the_host_image_cannot_be_named_in_a_manifest(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  lab:\n    image: host\n")
    with pytest.raises(KubeError, match="the host image is the host's own"):
        kube.generate(compose_files=[str(path)])
    proc = subprocess.run([sys.executable, "-m", "jupybox", "kube", "generate", "--compose-file", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 125 and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("change, message", [
    (lambda p: p["spec"]["containers"][0].pop("name"), "spec.containers[0]: 'name' is a required property"),
    (lambda p: p["spec"]["containers"][0].update(bogus=1), "spec.containers[0]: Additional properties"),
    (lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": "http"}]),
     "spec.containers[0].ports[0].containerPort: 'http' is not of type 'integer'"),
    (lambda p: p["spec"].update(restartPolicy="Sometimes"), "spec.restartPolicy"),
    (lambda p: p.update(kind="Widget"), "Widget (v1): not a kind jupybox knows"),
])
def test_validation_refuses_what_a_cluster_would(change, message):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "a", "image": "busybox"}], "restartPolicy": "Never"}}
    validate.check(pod)
    change(pod)
    with pytest.raises(KubeError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        validate.check(pod)


def test_the_models_check_what_the_schema_lets_through():
    """A schema older than the client's models would accept a field the models drop: both are run."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "a", "image": "busybox", "ports": [{"containerPort": 80}]}]}}
    validate.check(pod)
    assert validate._difference(pod, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                                      "spec": {"containers": [{"name": "a", "image": "busybox"}]}}) == [
        "spec", "containers", 0, "ports"]


@pytest.mark.root
def test_a_container_becomes_a_pod(jupybox_root):
    import jupybox

    from jupybox.testing import busybox_tarball, cache_dir, import_image

    import_image(jupybox_root, busybox_tarball(cache_dir()), "busybox:latest")
    jupybox.create("busybox", ["sleep", "60"], root=jupybox_root, name="job", network="none", memory="32m",
                   entrypoint=["/bin/busybox"], hostname="job1", add_hosts=["db:10.0.0.5"], dns=["9.9.9.9"],
                   labels={"team": "a", "not a label": "x y"}, user="nobody", pids_limit=20)
    docs, warnings = kube.generate(["job"], root=jupybox_root)
    spec = docs[0]["spec"]
    c = spec["containers"][0]
    assert (c["command"], c["args"]) == (["/bin/busybox"], ["sleep", "60"])
    assert (spec["hostname"], spec["hostAliases"], spec["dnsConfig"]) == (
        "job1", [{"ip": "10.0.0.5", "hostnames": ["db"]}], {"nameservers": ["9.9.9.9"]})
    assert docs[0]["metadata"] == {"name": "job", "labels": {"team": "a"}, "annotations": {"not a label": "x y"}}
    assert "securityContext" not in c
    text = textwrap.indent("\n".join(warnings), "  ")
    for expected in ("user 'nobody': Kubernetes needs numeric ids", "--pids-limit 20", "--network none"):
        assert expected in text
    with pytest.raises(KubeError, match="no such container or compose project: nothing"):
        kube.generate(["nothing"], root=jupybox_root)


@pytest.mark.root
@pytest.mark.network
def test_push_puts_the_image_where_the_manifest_names_it(jupybox_root, registry, tmp_path):
    import jupybox

    from jupybox.image.store import ImageStore
    from jupybox.paths import Layout
    from jupybox.registry.pull import pull
    from jupybox.testing import busybox_tarball, cache_dir, import_image

    import_image(jupybox_root, busybox_tarball(cache_dir()), "busybox:latest")
    jupybox.create("busybox", ["true"], root=jupybox_root, name="job", network="none")
    docs, warnings = kube.generate(["job"], root=jupybox_root, push=registry.host)
    image = docs[0]["spec"]["containers"][0]["image"]
    assert image == f"{registry.host}/library/busybox:latest"
    assert not [w for w in warnings if "must be able to pull" in w]
    elsewhere = ImageStore(Layout(tmp_path / "other"))
    assert pull(elsewhere, image).id == jupybox.api.image("busybox", root=jupybox_root).id
