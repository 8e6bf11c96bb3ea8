"""kube play / kube down, in a network namespace of the test's own (tests/network's ``net``): a
generated manifest played back gives an equivalent container; ConfigMaps, Secrets, Deployments and
Services run as podman runs them; bad manifests are one line and leave nothing."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from jupybox.image.reference import parse_reference
from jupybox.runtime.options import make_spec
from jupybox.units import parse_size
from tests.network.conftest import Net, net, netns  # noqa: F401 - fixtures shared with tests/network

pytest.importorskip("kubernetes")
pytest.importorskip("kubernetes_validate")
pytestmark = [pytest.mark.root, pytest.mark.slow]


def _inspect(n: Net, name: str) -> dict:
    return json.loads(n.ok("inspect", name))[0]


def _what_it_says(info: dict) -> dict:
    """The parts of ``inspect`` a manifest carries (names, networks and kube's own labels aside)."""
    host, cfg = info["HostConfig"], info["Config"]
    return {
        "image": str(parse_reference(cfg["Image"])),
        "cmd": cfg["Cmd"], "entrypoint": cfg["Entrypoint"], "env": sorted(cfg["Env"]), "workdir": cfg["WorkingDir"],
        "user": cfg["User"], "hostname": cfg["Hostname"],
        "labels": {k: v for k, v in cfg["Labels"].items() if not k.startswith("io.jupybox.kube.")},
        "limits": (host["Memory"], host["NanoCpus"], host["CpuShares"]),
        "security": (host["CapAdd"], host["CapDrop"], host["ReadonlyRootfs"], host["Privileged"]),
        "ports": host["PortBindings"], "dns": host["Dns"], "hosts": host["ExtraHosts"],
        "tmpfs": {d: [parse_size(o[5:], "size") if o.startswith("size=") else o for o in opts.split(",")]
                  for d, opts in (host["Tmpfs"] or {}).items()},
        "mounts": sorted((m["Type"], m.get("Name") or m.get("Source"), m["Destination"], m["RW"])
                         for m in info["Mounts"]),
    }


def test_a_generated_pod_played_back_is_the_same_container(net, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "index.html").write_text("from the host\n")
    net.ok("create", "--name", "web", "-p", "127.0.0.1:18080:8080", "-e", "A=1", "-e", "B=two words",
           "-m", "64m", "--cpus", "0.5", "--cpu-shares", "256", "-v", "pages:/data", "-v", f"{shared}:/www:ro",
           "--tmpfs", "/run:size=1m", "-u", "1000:1000", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
           "--read-only", "-w", "/data", "--hostname", "webhost", "--add-host", "db:10.0.0.5",
           "--dns", "9.9.9.9", "-l", "tier=front", "--entrypoint", "/bin/busybox",
           "busybox", "httpd", "-f", "-p", "8080", "-h", "/www")
    before = _what_it_says(_inspect(net, "web"))
    manifest = tmp_path / "web.yaml"
    net.ok("kube", "generate", "web", "-f", manifest)
    net.ok("rm", "web")

    proc = net.jb("kube", "play", manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["web-web"]
    after = _what_it_says(_inspect(net, "web-web"))
    assert after == before
    assert net.fetch("http://127.0.0.1:18080/index.html") == "from the host\n"

    assert net.jb("kube", "down", manifest).stdout.split() == ["web-web"]
    assert net.jb("ps", "-a", "-q").stdout.split() == []
    assert "kube-web" not in net.ok("network", "ls")
    assert net.ok("volume", "ls", "-q").split() == ["pages"]  # a claim outlives the pod, as a PVC does


APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: site}
data:
  index.html: "hello from a ConfigMap\\n"
  GREETING: hello
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: czNjcmV0}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity: {}
      containers:
      - name: httpd
        image: busybox:latest
        command: [httpd, -f, -p, "8080", -h, /www]
        readinessProbe: {tcpSocket: {port: 8080}}
        volumeMounts: [{name: site, mountPath: /www}]
      volumes: [{name: site, configMap: {name: site, items: [{key: index.html, path: index.html}]}}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend}
spec: {selector: {app: web}, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:latest
    command: [sh, -c]
    args:
    - >-
      echo "$GREETING $PASSWORD"; ls -l /secret | tail -n 1; cat /secret/password; echo;
      until wget -q -O- http://frontend:8080/index.html; do sleep 0.2; done; sleep 600
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    envFrom: [{configMapRef: {name: site}}]
    volumeMounts:
    - {name: secret, mountPath: /secret}
    - {name: scratch, mountPath: /scratch}
  volumes:
  - {name: secret, secret: {secretName: creds, defaultMode: 0400}}
  - {name: scratch, persistentVolumeClaim: {claimName: scratch}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: nightly}
spec: {template: {spec: {containers: [{name: a, image: busybox}], restartPolicy: Never}}}
"""


def test_configmaps_secrets_deployments_and_services_run_as_podman_runs_them(net, tmp_path):
    manifest = tmp_path / "app.yaml"
    manifest.write_text(APP)
    proc = net.jb("kube", "play", manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["web-0-httpd", "web-1-httpd", "client-main"]
    ignored = [ln for ln in proc.stderr.splitlines() if "not supported, ignored" in ln]
    assert len(ignored) == 1
    for what in ("Deployment/web: spec.template.spec.affinity, spec.template.spec.containers[0].readinessProbe",
                 "Job nightly"):
        assert what in ignored[0]

    assert net.eventually(lambda: "hello from a ConfigMap" in net.jb("logs", "client-main").stdout, timeout=30)
    lines = net.jb("logs", "client-main").stdout.splitlines()
    assert lines[0] == "hello s3cret"
    assert lines[1].startswith("-r--------")  # defaultMode 0400 is octal, as kubectl reads it
    assert lines[2] == "s3cret"
    aliases = _inspect(net, "web-1-httpd")["NetworkSettings"]["Networks"]["kube-app"]["Aliases"]
    assert set(aliases) >= {"web", "web-1", "frontend"}

    down = net.jb("kube", "down", manifest)
    assert sorted(down.stdout.split()) == ["client-main", "web-0-httpd", "web-1-httpd"]
    assert net.jb("ps", "-a", "-q").stdout.split() == []
    assert net.ok("volume", "ls", "-q").split() == ["scratch"]  # play's ConfigMap/Secret volumes are gone
    assert "kube-app" not in net.ok("network", "ls")
    net.ok("kube", "down", "-v", manifest)
    assert net.ok("volume", "ls", "-q").split() == []


def test_a_bad_manifest_is_one_line_and_a_failed_play_leaves_nothing(net, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: a
            image: busybox:latest
            ports: [{containerPort: http}]
        """))
    proc = net.jb("kube", "play", bad)
    assert proc.returncode == 125
    assert proc.stderr.strip() == (f"jupybox: {bad}:8: spec.containers[0].ports[0].containerPort: "
                                   "'http' is not of type 'integer'")

    half = tmp_path / "half.yaml"
    half.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        data: {a: b}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: first}
        spec:
          containers: [{name: a, image: busybox:latest, command: [sleep, "600"]}]
          volumes: [{name: c, configMap: {name: c}}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: second}
        spec:
          containers: [{name: a, image: "nothing:here", imagePullPolicy: Never}]
        """))
    proc = net.jb("kube", "play", half)
    assert proc.returncode == 125
    assert "image nothing:here is not in the store" in proc.stderr
    assert net.jb("ps", "-a", "-q").stdout.split() == []
    assert net.ok("volume", "ls", "-q").split() == []
    assert "kube-half" not in net.ok("network", "ls")


def _takes(option: str, value) -> str | None:
    try:
        make_spec("busybox", None, **{option: value})
        return None
    except Exception as e:  # noqa: BLE001
        return str(e) if "unknown option" in str(e) else None


def test_restart_policy_and_healthcheck_survive_the_round_trip(net, tmp_path):
    healthcheck = {"test": ["CMD-SHELL", "true"], "interval": 5.0, "timeout": 2.0, "retries": 3, "start_period": 1.0}
    for option, value in (("restart", "on-failure"), ("healthcheck", healthcheck)):
        missing = _takes(option, value)
        if missing:
            pytest.skip(f"the runtime lacks the {option!r} container option (make_spec: {missing})")
    from jupybox.kube import source

    root = net.root
    create = (f"import jupybox; jupybox.create('busybox', ['sleep', '600'], root={root!r}, name='job', "
              f"network='none', restart='on-failure', healthcheck={healthcheck!r})")
    made = net.sh(f"{sys.executable} -c \"{create}\"")  # in the namespace, as the CLI runs
    assert made.returncode == 0, made.stderr
    said = source.from_names(["job"], root=root)[0].boxes[0].extras
    assert (said["restart"], said["healthcheck"]["test"]) == ("on-failure", ["CMD-SHELL", "true"])
    manifest = tmp_path / "job.yaml"
    net.ok("kube", "generate", "job", "-f", manifest)
    net.ok("rm", "job")
    net.ok("kube", "play", manifest)
    played = source.from_names(["job-job"], root=root)[0].boxes[0].extras
    assert played == said
    net.ok("kube", "down", manifest)


COMPOSE = """\
services:
  web:
    image: busybox:latest
    command: httpd -f -p 8080
    ports: ["18081:8080"]
  worker:
    image: busybox:latest
    command: sleep 600
    scale: 2
"""


def test_a_running_compose_project_becomes_deployments_and_services(net, tmp_path):
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    net.ok("compose", "-f", tmp_path / "compose.yaml", "-p", "shop", "up", "-d")
    try:
        out = net.ok("kube", "generate", "shop", "--service")
    finally:
        net.ok("compose", "-f", tmp_path / "compose.yaml", "-p", "shop", "down")
    docs = list(__import__("yaml").safe_load_all(out))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", "web"), ("Service", "web"), ("Deployment", "worker")]
    assert [d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment"] == [1, 2]
    template = docs[0]["spec"]["template"]
    assert not [k for k in template["metadata"]["labels"] if k.startswith("com.docker.compose.")]
    assert docs[1]["spec"]["ports"] == [{"name": "tcp-18081", "port": 18081, "targetPort": 8080, "protocol": "TCP"}]
