"""``jupybox compose config`` against docker-compose 1.29.2's ``config``, on a corpus of compose
files in the spirit of docker's awesome-compose samples (``corpus/``): the same services,
networks and volumes, compared as data.

The two print the same model in two layouts: jupybox prints compose v2's (compose-go's), which
spells out what 1.29.2 leaves implicit. ``as_v2`` turns 1.29.2's output into that layout with
these rules, and nothing else:

- short port strings ("127.0.0.1:9000:9000/udp") and {published, target} become long-syntax
  ports with a string ``published``, ``protocol: tcp`` and ``mode: ingress`` by default;
- short volume strings ("data:/data:rw") become long syntax; compose-go adds ``volume: {}`` to
  volumes and ``bind: {create_host_path: true}`` to binds (dropped from jupybox's side);
- commands and entrypoints given as strings become argument lists (shell words), a string
  healthcheck test ``["CMD-SHELL", test]``;
- durations and sizes are compared as nanoseconds and bytes (1.29.2 prints "90s" and "100m",
  compose-go "1m30s" and "104857600");
- ``depends_on`` entries get ``required: true``; services on no network and without
  ``network_mode`` are on the implicit ``default`` network, which then exists; networks and
  volumes are named ``<project>_<key>`` (their key when external);
- ``env_file`` (already merged into ``environment`` by both) is not compared;
- ``healthcheck: {disable: true}`` (compose-go keeps it) is 1.29.2's ``test: [NONE]``;
- ports are compared as a set (1.29.2 sorts the ports it merges from several files).

Deliberate differences, outside the corpus and covered by other tests: YAML 1.2 scalars
(``yes``/``no`` stay strings, ``22:22`` is not an int: test_yamlfile.py); the ``:+``/``+``
operators and nested defaults 1.29.2 does not know (test_interpolation.py); profiles, which
1.29.2's ``config`` does not apply (so the corpus is compared with every profile enabled,
``--profile '*'``; test_loader.py checks the selection); ``deploy.resources.limits.pids``, which
1.29.2's schema refuses; build args without a value, which compose-go takes from the
environment and drops when unset, and 1.29.2 makes empty.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                reason="docker-compose 1.29.2 (Debian's docker-compose) is not installed")


def _ns(text) -> int:
    units = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    parts = re.findall(r"([0-9.]+)([a-z]+)", str(text))
    assert parts and "".join(a + b for a, b in parts) == str(text), text
    return round(sum(float(n) * units[u] for n, u in parts))


def _bytes(text) -> int:
    m = re.fullmatch(r"([0-9.]+)\s*([kmgt]?)i?b?", str(text).lower())
    assert m, text
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def _port(p) -> list[dict]:
    if isinstance(p, dict):
        out = {"mode": p.get("mode", "ingress"), "target": int(p["target"]), "protocol": p.get("protocol", "tcp")}
        if p.get("published") is not None:
            out["published"] = str(p["published"])
        if p.get("host_ip"):
            out["host_ip"] = p["host_ip"]
        return [out]
    text, _, proto = str(p).partition("/")
    parts = text.split(":")
    ip, pub, target = (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("", parts[0], parts[1]) \
        if len(parts) == 2 else ("", "", parts[0])
    out = {"mode": "ingress", "target": int(target), "protocol": proto or "tcp"}
    if pub:
        out["published"] = pub
    if ip:
        out["host_ip"] = ip
    return [out]


def _volume(v, workdir: str) -> dict:
    if isinstance(v, dict):
        return dict(v)
    parts = v.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    out = {"type": "bind" if parts[0].startswith("/") else "volume", "source": parts[0], "target": parts[1]}
    if len(parts) == 3 and "ro" in parts[2].split(","):
        out["read_only"] = True
    return out


def _service_v1(svc: dict, workdir: str) -> dict:
    svc = dict(svc)
    for key in ("command", "entrypoint"):
        if isinstance(svc.get(key), str):
            svc[key] = shlex.split(svc[key])
    if "ports" in svc:
        svc["ports"] = [q for p in svc["ports"] for q in _port(p)]
    if "volumes" in svc:
        svc["volumes"] = [_volume(v, workdir) for v in svc["volumes"]]
    if "depends_on" in svc:
        svc["depends_on"] = {k: dict(v, required=True) for k, v in svc["depends_on"].items()}
    if "network_mode" not in svc and not svc.get("networks"):
        svc["networks"] = {"default": None}
    if "expose" in svc:
        svc["expose"] = [str(e) for e in svc["expose"]]
    if "build" in svc:
        build = dict(svc["build"])
        build.setdefault("dockerfile", "Dockerfile")
        if "args" in build:
            build["args"] = {k: v for k, v in build["args"].items() if v != ""}
        svc["build"] = build
    return svc


def _service_v2(svc: dict) -> dict:
    svc = dict(svc)
    svc.pop("env_file", None)
    if (svc.get("healthcheck") or {}).get("disable"):
        svc["healthcheck"] = {"test": ["NONE"]}
    if "volumes" in svc:
        vols = []
        for v in svc["volumes"]:
            v = {k: x for k, x in v.items() if not (k == "volume" and x == {})}
            if v.get("bind") == {"create_host_path": True}:
                v.pop("bind")
            vols.append(v)
        svc["volumes"] = vols
    return svc


def _units(svc: dict) -> dict:
    """Durations and sizes as numbers, on both sides."""
    svc = json.loads(json.dumps(svc))
    if "ports" in svc:
        svc["ports"].sort(key=lambda p: (p["target"], p["protocol"], p.get("published", "")))
    hc = svc.get("healthcheck")
    if hc:
        if isinstance(hc.get("test"), str):
            hc["test"] = ["CMD-SHELL", hc["test"]]
        for k in ("interval", "timeout", "start_period"):
            if k in hc:
                hc[k] = _ns(hc[k])
    if "stop_grace_period" in svc:
        svc["stop_grace_period"] = _ns(svc["stop_grace_period"])
    for k in ("mem_limit", "memswap_limit"):
        if k in svc:
            svc[k] = _bytes(svc[k])
    limits = svc.get("deploy", {}).get("resources", {}).get("limits")
    if limits and "memory" in limits:
        limits["memory"] = _bytes(limits["memory"])
    if limits and "cpus" in limits:
        limits["cpus"] = float(limits["cpus"])
    return svc


def _resources(v1: dict, project: str, kind: str) -> dict:
    out = {}
    for key, cfg in (v1.get(kind) or {}).items():
        cfg = dict(cfg or {})
        cfg.setdefault("name", key if cfg.get("external") else f"{project}_{key}")
        out[key] = cfg
    return out


def as_v2(v1: dict, project: str, workdir: str) -> dict:
    services = {n: _units(_service_v1(s, workdir)) for n, s in v1["services"].items()}
    networks = _resources(v1, project, "networks")
    if any((s.get("networks") or {}).get("default", 0) is None for s in services.values()):
        networks.setdefault("default", {"name": f"{project}_default"})
    return {"services": services, "networks": networks, "volumes": _resources(v1, project, "volumes")}


def normalized_v2(model: dict) -> dict:
    return {"services": {n: _units(_service_v2(s)) for n, s in model["services"].items()},
            "networks": model.get("networks") or {}, "volumes": model.get("volumes") or {}}


def _case(tmp_path, name: str):
    work = tmp_path / name
    shutil.copytree(CORPUS / name, work)
    args = (work / "ARGS").read_text().split() if (work / "ARGS").exists() else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    if (work / "ENV").exists():
        env.update(line.split("=", 1) for line in (work / "ENV").read_text().split())
    return work, args, env


@pytest.mark.parametrize("name", CASES)
def test_config_as_docker_compose(tmp_path, name):
    work, args, env = _case(tmp_path, name)
    theirs = subprocess.run(["docker-compose", *args, "config"], cwd=work, env=env, capture_output=True, text=True,
                            timeout=60)
    assert theirs.returncode == 0, theirs.stderr
    ours = subprocess.run([sys.executable, "-m", "jupybox", "compose", *args, "--profile", "*", "config",
                           "--format", "json"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert ours.returncode == 0, ours.stderr
    model = json.loads(ours.stdout)
    assert model["name"] == re.sub(r"[^a-z0-9_-]", "", name)
    expected = as_v2(yaml.safe_load(theirs.stdout), model["name"], str(work))
    got = normalized_v2(model)
    for kind in ("services", "networks", "volumes"):
        assert got[kind] == expected[kind], f"{kind} differ"


def test_the_comparison_sees_a_difference(tmp_path):
    """The comparison is not blind: a changed value on one side is a failure."""
    work, args, env = _case(tmp_path, "resources")
    theirs = yaml.safe_load(subprocess.run(["docker-compose", "config"], cwd=work, env=env, capture_output=True,
                                           text=True, timeout=60).stdout)
    theirs["services"]["limited"]["mem_limit"] = "101m"
    ours = json.loads(subprocess.run([sys.executable, "-m", "jupybox", "compose", "config", "--format", "json"],
                                     cwd=work, env=env, capture_output=True, text=True, timeout=60).stdout)
    assert normalized_v2(ours)["services"] != as_v2(theirs, ours["name"], str(work))["services"]
