"""The table read both ways without a runtime: what ``generate`` writes, ``podspec`` reads back to the
same options (restart policies and health checks included, which the runtime may not take yet)."""

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes")

from jupybox.kube import podspec, quantity, supported  # noqa: E402
from jupybox.kube.errors import KubeError  # noqa: E402
from jupybox.kube.manifests import Generator  # noqa: E402
from jupybox.kube.source import Box, Workload  # noqa: E402
from jupybox.runtime.options import make_spec  # noqa: E402

HEALTHCHECK = {"test": ["CMD-SHELL", "wget -q -O- http://127.0.0.1/"], "interval": 5.0, "timeout": 2.0,
               "retries": 4, "start_period": 1.0}


@pytest.mark.parametrize("restart", ["no", "always", "on-failure"])
def test_restart_and_healthcheck_go_there_and_back(restart):
    spec = make_spec("busybox:latest", ["httpd", "-f"], memory="96m", cpus=1.5, cpu_shares=256, user="1000:100",
                     cap_add=["NET_ADMIN"], read_only=True, ports=["127.0.0.1:8080:80/udp"]).to_dict()
    extras = {"restart": restart, "healthcheck": HEALTHCHECK, "stop_timeout": 30.0}
    pod = Generator().manifests([Workload("web", [Box("web", spec, extras)])])[0]
    plan = podspec.translate("web", pod["spec"], {}, podspec.Data(), warn=lambda line: None)
    opts = plan.containers[0].options
    assert (opts["restart"], opts["healthcheck"], opts["stop_timeout"]) == (restart, HEALTHCHECK, 30.0)
    assert (opts["memory"], opts["cpus"], opts["cpu_shares"], opts["user"]) == (96 << 20, 1.5, 256, "1000:100")
    assert (opts["cap_add"], opts["read_only"]) == (["NET_ADMIN"], True)
    assert opts["ports"] == [{"host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80, "protocol": "udp"}]
    assert plan.containers[0].command == ["httpd", "-f"] and "entrypoint" not in opts


def test_quantities_are_written_short_and_exact():
    assert [quantity.memory(n) for n in (256 << 20, 1 << 30, 1000, 3 << 10)] == ["256Mi", "1Gi", "1000", "3Ki"]
    assert [quantity.cpu(c) for c in (0.5, 2, 0.25, 1.5)] == ["500m", "2", "250m", "1500m"]
    assert quantity.parse("1.5Gi", "x") == 1.5 * (1 << 30)
    assert quantity.dns_label("My_App.v2--") == "my-app-v2"
    with pytest.raises(ValueError, match="invalid quantity 'lots'"):
        quantity.parse("lots", "resources.limits.memory")


def test_configmap_and_secret_files_and_env():
    data = podspec.Data()
    data.add({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a.conf": "x=1\n", "MODE": "fast"}})
    data.add({"kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "dG9r"}, "stringData": {"pw": "p"}})
    spec = {"containers": [{"name": "m", "image": "busybox",
                            "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "C_"}],
                            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
                                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                            "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}]}],
            "volumes": [{"name": "conf", "configMap": {"name": "c", "items": [{"key": "a.conf", "path": "sub/a.conf",
                                                                                "mode": 0o600}]}}]}
    plan = podspec.translate("p", spec, {}, data, warn=lambda line: None)
    assert plan.containers[0].options["env"] == {"C_a.conf": "x=1\n", "C_MODE": "fast", "TOKEN": "tok", "POD": "p"}
    assert plan.volumes[0].files == {"sub/a.conf": (b"x=1\n", 0o600)}
    assert plan.containers[0].mounts[0].readonly
    bad = dict(spec, volumes=[{"name": "conf", "configMap": {"name": "c", "items": [{"key": "a.conf",
                                                                                      "path": "../escape"}]}}])
    with pytest.raises(KubeError, match="leaves the volume"):
        podspec.translate("p", bad, {}, data, warn=lambda line: None)
    with pytest.raises(KubeError, match="ConfigMap missing is not in the file"):
        podspec.translate("p", dict(spec, volumes=[{"name": "conf", "configMap": {"name": "missing"}}]), {}, data,
                          warn=lambda line: None)
    with pytest.raises(KubeError, match="nfs volumes are not supported"):
        podspec.translate("p", dict(spec, volumes=[{"name": "conf", "nfs": {"server": "x", "path": "/"}}]), {}, data,
                          warn=lambda line: None)


def test_unsupported_fields_are_named():
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "ownerReferences": []},
           "spec": {"nodeSelector": {}, "containers": [{"name": "a", "image": "b", "resources": {
               "requests": {"memory": "1Gi", "cpu": "1"}}, "securityContext": {"runAsNonRoot": True}}]}}
    assert supported.unsupported(doc) == ["metadata.ownerReferences", "spec.nodeSelector",
                                          "spec.containers[0].resources.requests.memory",
                                          "spec.containers[0].securityContext.runAsNonRoot"]
    assert supported.unsupported({"kind": "StatefulSet", "metadata": {"name": "db"}}) == ["StatefulSet db"]
