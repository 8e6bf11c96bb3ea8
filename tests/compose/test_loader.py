"""Loading projects: files, overrides, .env, names, profiles, and one-line errors (file:line: key)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from jupybox.compose import load
from jupybox.compose.errors import ComposeError


def write(d, name, text):
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def cli(cwd, *args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "jupybox", "compose", *args], cwd=cwd, capture_output=True,
                          text=True, env=e, timeout=60)


def test_default_file_override_and_parent_directory(tmp_path):
    write(tmp_path, "docker-compose.yml", "services: {old: {image: a}}\n")
    write(tmp_path, "compose.yaml", "services: {web: {image: busybox, environment: {A: '1'}}}\n")
    write(tmp_path, "compose.override.yaml", "services: {web: {environment: {B: '2'}}}\n")
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    p = load(cwd=str(sub), environ={})
    assert list(p.services) == ["web"]  # compose.yaml wins over docker-compose.yml
    assert p.services["web"]["environment"] == {"A": "1", "B": "2"}
    assert p.name == tmp_path.name.lower().replace(".", "")
    assert p.workdir == str(tmp_path)


def test_override_rules(tmp_path):
    write(tmp_path, "a.yaml", """\
        services:
          web:
            image: busybox
            command: [httpd, -f]
            ports: ["8080:80", "9000:90"]
            volumes: ["./a:/data", "logs:/logs"]
            environment: [A=1, B=2]
            labels: {keep: "yes"}
            depends_on: [db]
            healthcheck: {test: [CMD, a], interval: 5s}
          db: {image: redis}
        volumes: {logs: {}}
        """)
    write(tmp_path, "b.yaml", """\
        services:
          web:
            command: sleep 1
            ports: ["8080:80", "8081:81"]
            volumes: ["./b:/data"]
            environment: {B: "3", C: "4"}
            labels: !reset {}
            depends_on: {cache: {condition: service_healthy}}
            healthcheck: !override {test: [CMD, b]}
          cache: {image: redis}
        """)
    web = load(["a.yaml", "b.yaml"], cwd=str(tmp_path), environ={}).services["web"]
    assert web["command"] == ["sleep", "1"]  # replaced, not appended
    assert [(p["published"], p["target"]) for p in web["ports"]] == [("8080", 80), ("9000", 90), ("8081", 81)]
    assert [(v.get("source"), v["target"]) for v in web["volumes"]] == [(str(tmp_path / "b"), "/data"),
                                                                        ("logs", "/logs")]
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert "labels" not in web
    assert web["depends_on"] == {"db": {"condition": "service_started", "required": True},
                                 "cache": {"condition": "service_healthy", "required": True}}
    assert web["healthcheck"] == {"test": ["CMD", "b"]}  # no interval: overridden whole


def test_dotenv_env_file_and_precedence(tmp_path):
    write(tmp_path, ".env", "TAG=from-dotenv\nPORT=8080\nCOMPOSE_PROJECT_NAME=fromdotenv\nQUOTED='${TAG}'\n"
                            "DOUBLE=\"x ${TAG:-d}\"\n")
    write(tmp_path, "other.env", "TAG=from-other\n")
    write(tmp_path, "svc.env", "A=from-file\nB=${TAG}\n")
    write(tmp_path, "compose.yaml", """\
        services:
          web:
            image: "busybox:${TAG}"
            ports: ["${PORT:-1}:80"]
            env_file: svc.env
            environment:
              A: own
              Q: "${QUOTED}"
              D: "${DOUBLE}"
              UNSET:
        """)
    p = load(cwd=str(tmp_path), environ={"PORT": "9999"})
    web = p.services["web"]
    assert p.name == "fromdotenv"
    assert web["image"] == "busybox:from-dotenv" and web["ports"][0]["published"] == "9999"  # the process env wins
    assert web["environment"] == {"A": "own", "B": "from-dotenv", "Q": "${TAG}", "D": "x from-dotenv",
                                  "UNSET": None}
    p = load(cwd=str(tmp_path), environ={}, env_files=["other.env"])  # --env-file replaces .env
    assert p.services["web"]["image"] == "busybox:from-other" and p.name == tmp_path.name.lower()
    assert p.services["web"]["ports"][0]["published"] == "1"  # PORT was only in .env
    p = load(cwd=str(tmp_path), environ={}, env_files=["other.env"], text="services: {a: {image: 'x$NOPE'}}")
    assert p.warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.']


def test_project_names(tmp_path):
    write(tmp_path, "My.Project_x/compose.yaml", "services: {a: {image: x}}\n")
    assert load(cwd=str(tmp_path / "My.Project_x"), environ={}).name == "myproject_x"
    write(tmp_path, "n/compose.yaml", "name: ${N:-Named}\nservices: {a: {image: x}}\n")
    assert load(cwd=str(tmp_path / "n"), environ={}).name == "named"
    assert load(cwd=str(tmp_path / "n"), environ={}, project_name="given").name == "given"
    with pytest.raises(ComposeError, match="invalid project name 'Bad!'"):
        load(cwd=str(tmp_path / "n"), environ={}, project_name="Bad!")


def test_profiles(tmp_path):
    write(tmp_path, "compose.yaml", """\
        services:
          web: {image: x}
          debug: {image: x, profiles: [dev]}
          tool: {image: x, profiles: [ops], depends_on: [web]}
        """)
    assert sorted(load(cwd=str(tmp_path), environ={}).services) == ["web"]
    assert sorted(load(cwd=str(tmp_path), environ={}, profiles=["dev"]).services) == ["debug", "web"]
    assert sorted(load(cwd=str(tmp_path), environ={"COMPOSE_PROFILES": "dev,ops"}).services) == ["debug", "tool", "web"]
    assert sorted(load(cwd=str(tmp_path), environ={}, services=["tool"]).services) == ["tool", "web"]


def test_normalized_defaults(tmp_path):
    write(tmp_path, "compose.yaml", """\
        services:
          web:
            build: ./app
            ports: [80, "127.0.0.1:8000-8001:8000-8001/udp"]
            volumes: ["data:/var/lib/x/", "/tmp", "~/cfg:/cfg:ro"]
            healthcheck: {test: curl -f localhost, interval: 90s, timeout: 1500ms}
            stop_grace_period: 1m
            mem_limit: 64m
            network_mode: none
          db: {image: redis, networks: [back]}
        networks: {back: {}, ext: {external: true}}
        volumes: {data: {}}
        """)
    p = load(cwd=str(tmp_path), environ={"HOME": "/home/u"})
    web, db = p.services["web"], p.services["db"]
    assert web["build"] == {"context": str(tmp_path / "app"), "dockerfile": "Dockerfile"}
    assert web["ports"] == [
        {"mode": "ingress", "target": 80, "protocol": "tcp"},
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 8000, "published": "8000", "protocol": "udp"},
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 8001, "published": "8001", "protocol": "udp"}]
    assert web["volumes"][0] == {"type": "volume", "source": "data", "target": "/var/lib/x", "volume": {}}
    assert web["volumes"][1] == {"type": "volume", "target": "/tmp", "volume": {}}
    assert web["volumes"][2]["source"] == os.path.expanduser("~/cfg") and web["volumes"][2]["read_only"] is True
    assert web["healthcheck"] == {"test": ["CMD-SHELL", "curl -f localhost"], "interval": "1m30s", "timeout": "1.5s"}
    assert web["stop_grace_period"] == "1m0s" and web["mem_limit"] == str(64 << 20)
    assert "networks" not in web and db["networks"] == {"back": None}
    assert p.networks == {"back": {"name": f"{p.name}_back"}, "ext": {"external": True, "name": "ext"}}
    assert p.volumes == {"data": {"name": f"{p.name}_data"}}


@pytest.mark.parametrize("files,text,expect", [
    ({}, "services:\n  web:\n    image: x\n    imagee: y\n",
     "compose.yaml:4: services.web.imagee: additional property 'imagee' is not allowed"),
    ({}, "servces: {}\n", "compose.yaml:1: servces: additional property 'servces' is not allowed"),
    ({}, "services:\n  web:\n    image: x\n    ports: {a: 1}\n", "compose.yaml:4: services.web.ports: must be a list"),
    ({}, "services:\n  a: {image: x, depends_on: [b]}\n  b:\n    image: x\n    depends_on: [a]\n",
     "compose.yaml:2: services.a.depends_on.b: dependency cycle detected: a -> b -> a"),
    ({}, "services:\n  web:\n    image: ${TAG:?the tag is needed}\n",
     "compose.yaml:3: services.web.image: required variable TAG is missing a value: the tag is needed"),
    ({}, "services:\n  a: {image: x, ports: ['8080:80']}\n  b:\n    image: x\n    ports:\n      - 8080:81\n",
     "compose.yaml:6: services.b.ports[0]: port 8080/tcp is already published by service a (services.a.ports[0])"),
    ({}, "services:\n  web:\n    image: x\n    networks: [front]\n",
     "compose.yaml:4: services.web.networks.front: service \"web\" refers to undefined network front"),
    ({}, "services:\n  web:\n    image: x\n    volumes: ['data:/d']\n",
     "compose.yaml:4: services.web.volumes[0]: service \"web\" refers to undefined volume data"),
    ({}, "services:\n  web:\n    image: x\n    healthcheck:\n      interval: 5 parsecs\n",
     "compose.yaml:5: services.web.healthcheck.interval: invalid duration '5 parsecs'"),
    ({"b.yaml": "services:\n  web:\n    bogus: 1\n"}, "services: {web: {image: x}}\n",
     "b.yaml:3: services.web.bogus: additional property 'bogus' is not allowed"),
    ({}, "services:\n  web:\n    image: x\n    env_file: missing.env\n",
     "compose.yaml:4: services.web.env_file[0]: env file"),
    ({}, "services:\n  web:\n    image: x\n    ports: ['99999:80']\n",
     "compose.yaml:4: services.web.ports[0]: invalid port range '99999'"),
    ({}, "include: [other.yaml]\nservices: {web: {image: x}}\n", "compose.yaml:1: include: 'include' is not supported"),
    ({}, "services:\n  web:\n    image: x\n    extends: {service: base}\n  base: {image: y}\n",
     "compose.yaml:4: services.web.extends: 'extends' is not supported"),
])
def test_errors_are_one_line_with_file_line_key_and_exit_1(tmp_path, files, text, expect):
    write(tmp_path, "compose.yaml", text)
    args = []
    for name, content in files.items():
        write(tmp_path, name, content)
        args = ["-f", "compose.yaml", "-f", name]
    proc = cli(tmp_path, *args, "config")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"jupybox: {expect}"), proc.stderr


def test_no_file(tmp_path):
    proc = cli(tmp_path, "config")
    assert proc.returncode == 1 and "no configuration file provided" in proc.stderr


def test_schema_verdicts_are_remembered_only_for_valid_models(tmp_path):
    """A model validated once is not validated again (jsonschema is not even imported); an invalid
    one always is."""
    write(tmp_path, "compose.yaml", "services: {web: {image: x}}\n")
    probe = ("import sys, jupybox.compose as c; c.load(); print('jsonschema' in sys.modules)")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    run = lambda: subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,  # noqa: E731
                                 capture_output=True, text=True, timeout=60)
    assert run().stdout.strip() == "True"
    assert run().stdout.strip() == "False"
    write(tmp_path, "compose.yaml", "services: {web: {image: x, bogus: 1}}\n")
    for _ in range(2):
        assert "additional property 'bogus'" in run().stderr
