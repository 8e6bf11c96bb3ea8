"""A service of the project -> the options of ``jupybox.create`` for one of its containers.

What each key becomes:

    image / build            the image (a built one is named ``<project>-<service>``, as compose v2)
    command / entrypoint     the command and entrypoint (lists; [] clears the image's entrypoint)
    environment, env_file    env (a variable without a value is not set)
    ports                    published ports (host IP, host port or range, container port, protocol)
    volumes, tmpfs           named volumes (the project's real names), anonymous volumes, binds
                             (the host directory is made when missing, as docker does), tmpfs
    networks                 the first network (by priority, then name) at create, aliases: the
                             service's name and its aliases; the others connected before start
    network_mode             none, host or bridge
    mem_limit, memswap_limit, cpus, cpu_shares, pids_limit and deploy.resources.limits
    user, working_dir, hostname, labels, init, read_only, privileged, cap_add, cap_drop, dns,
    extra_hosts, stdin_open, tty
    restart / deploy.restart_policy, healthcheck, stop_signal
                             passed as ``restart`` (docker's string), ``healthcheck`` (docker's
                             dict, seconds) and ``stop_signal`` when the runtime accepts them
                             (``accepts``); until then ``runtime.py`` says so once per option

What jupybox cannot honour is refused before anything starts (``support.py``).
"""

from __future__ import annotations

import hashlib
import json
import os

from ..errors import UsageError
from .normalize import parse_duration, ram_bytes

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
CONFIG_HASH = "com.docker.compose.config-hash"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
VERSION = "com.docker.compose.version"

def networks_by_priority(svc: dict) -> list[str]:
    nets = svc.get("networks") or {}
    return sorted(nets, key=lambda n: (-int(((nets[n] or {}).get("priority") or 0)), n))


def image_of(project, name: str) -> str:
    svc = project.services.get(name) or project.disabled[name]
    return svc.get("image") or f"{project.name}-{name}"


def container_name(project, name: str, number: int) -> str:
    svc = project.services[name]
    return svc.get("container_name") or f"{project.name}-{name}-{number}"


def config_hash(project, name: str) -> str:
    """What makes a container out of date: its service's normalized model and the real names of
    the networks and volumes it uses (another ``up`` recreates a container whose hash differs)."""
    svc = project.services[name]
    nets = [n for n in (svc.get("networks") or {}) if n in project.networks]
    refs = {"networks": {n: project.networks[n].get("name") for n in nets},
            "volumes": {v["source"]: project.volumes[v["source"]].get("name") for v in svc.get("volumes") or []
                        if v.get("type") == "volume" and v.get("source") in project.volumes}}
    data = json.dumps({"service": svc, "refs": refs}, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def restart_policy(svc: dict) -> str | None:
    """docker's --restart string from ``restart`` or ``deploy.restart_policy``."""
    if svc.get("restart"):
        return str(svc["restart"])
    policy = (svc.get("deploy") or {}).get("restart_policy")
    if not policy:
        return None
    condition = policy.get("condition", "any")
    if condition == "none":
        return "no"
    if condition == "on-failure":
        attempts = policy.get("max_attempts")
        return f"on-failure:{attempts}" if attempts else "on-failure"
    return "always"


def check_restart(value: str) -> str:
    name, _, count = value.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped") or (count and (
            name != "on-failure" or not count.isdigit())):
        raise ValueError(f"invalid restart policy {value!r}: no, always, on-failure[:N] or unless-stopped")
    return value


def healthcheck(svc: dict) -> dict | None:
    """docker's healthcheck: {test, interval, timeout, retries, start_period} (seconds, floats)."""
    hc = svc.get("healthcheck")
    if not hc:
        return None
    if hc.get("disable"):
        return {"test": ["NONE"]}
    out: dict = {}
    if hc.get("test"):
        out["test"] = list(hc["test"])
    for key in ("interval", "timeout", "start_period"):
        if key in hc:
            out[key] = parse_duration(hc[key]) / 1e9
    if hc.get("retries") is not None:
        out["retries"] = int(hc["retries"])
    return out


def stop_grace_seconds(svc: dict) -> float:
    return parse_duration(svc["stop_grace_period"]) / 1e9 if svc.get("stop_grace_period") else 10.0


def _ports(svc: dict) -> list[dict]:
    out = []
    for p in svc.get("ports") or []:
        published = str(p.get("published") or "")
        out.append({"host_ip": "" if p.get("host_ip") in (None, "0.0.0.0") else p["host_ip"],
                    "host_port": published, "container_port": int(p["target"]),
                    "protocol": p.get("protocol", "tcp")})
    return out


def _mounts(project, svc: dict) -> list:
    from ..runtime.spec import Mount

    mounts = []
    for v in svc.get("volumes") or []:
        kind = v.get("type")
        ro = bool(v.get("read_only"))
        if kind == "bind":
            if (v.get("bind") or {}).get("create_host_path", True) and not os.path.exists(v["source"]):
                os.makedirs(v["source"], exist_ok=True)
            mounts.append(Mount(destination=v["target"], source=v["source"], type="bind", readonly=ro))
        elif kind == "volume":
            source = project.volumes[v["source"]]["name"] if v.get("source") else ""
            mounts.append(Mount(destination=v["target"], source=source, type="volume", readonly=ro))
        else:
            opts = []
            tmpfs = v.get("tmpfs") or {}
            if tmpfs.get("size"):
                opts.append(f"size={ram_bytes(tmpfs['size'])}")
            opts.append(f"mode={oct(int(tmpfs['mode']))[2:] if tmpfs.get('mode') is not None else '1777'}")
            mounts.append(Mount(destination=v["target"], type="tmpfs", options=opts))
    return mounts


def _extra_hosts(value) -> list[str]:
    if isinstance(value, dict):
        items = []
        for host, ips in value.items():
            items += [f"{host}:{ip}" for ip in (ips if isinstance(ips, list) else [ips])]
        return items
    out = []
    for item in value or []:
        host, sep, ip = str(item).partition("=")
        out.append(f"{host}:{ip}" if sep else str(item))
    return out


def labels(project, name: str, number: int, oneoff: bool = False) -> dict:
    svc = project.services[name]
    out = dict(svc.get("labels") or {})
    out.update({PROJECT: project.name, SERVICE: name, NUMBER: str(number), ONEOFF: "True" if oneoff else "False",
                CONFIG_HASH: config_hash(project, name), WORKING_DIR: project.workdir,
                CONFIG_FILES: ",".join(project.files), VERSION: "jupybox"})
    return out


def create_options(project, name: str, number: int, accepts) -> tuple[str, list | None, dict, list]:
    """(image, command, options for jupybox.create, [(network, aliases)] to connect before start).

    ``accepts(option, value)`` says whether the runtime takes an option (see ``runtime.accepts``);
    what it does not take is left out (the caller warns)."""
    svc = project.services[name]
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    memory = svc.get("mem_limit") or limits.get("memory")
    cpus = svc.get("cpus") or limits.get("cpus")
    pids = svc.get("pids_limit") or limits.get("pids")
    env = {k: v for k, v in (svc.get("environment") or {}).items() if v is not None}
    opts: dict = {
        "name": container_name(project, name, number) if number else None,
        "env": env,
        "workdir": svc.get("working_dir"),
        "user": svc.get("user"),
        "hostname": svc.get("hostname"),
        "labels": labels(project, name, number),
        "volumes": _mounts(project, svc),
        "tmpfs": [str(t) for t in svc.get("tmpfs") or []],
        "memory": int(memory) if memory else None,
        "memory_swap": int(ram_bytes(svc["memswap_limit"])) if svc.get("memswap_limit") else None,
        "cpus": float(cpus) if cpus else None,
        "cpu_shares": svc.get("cpu_shares"),
        "pids_limit": int(pids) if pids else None,
        "read_only": bool(svc.get("read_only")),
        "privileged": bool(svc.get("privileged")),
        "cap_add": list(svc.get("cap_add") or []),
        "cap_drop": list(svc.get("cap_drop") or []),
        "dns": list(svc.get("dns") or []),
        "add_hosts": _extra_hosts(svc.get("extra_hosts")),
        "interactive": bool(svc.get("stdin_open")),
        "tty": bool(svc.get("tty")),
        "ports": _ports(svc),
    }
    if svc.get("init") is not None:
        opts["init"] = bool(svc["init"])
    if "entrypoint" in svc:
        opts["entrypoint"] = list(svc["entrypoint"] or [])
    connect: list = []
    mode = svc.get("network_mode")
    if mode:
        opts["network"] = mode
    else:
        nets = networks_by_priority(svc)
        first, others = nets[0], nets[1:]
        opts["network"] = project.networks[first]["name"]
        opts["network_aliases"] = _aliases(svc, first, name)
        connect = [(project.networks[n]["name"], _aliases(svc, n, name)) for n in others]
    for option, value in (("restart", restart_policy(svc)), ("healthcheck", healthcheck(svc)),
                          ("stop_signal", svc.get("stop_signal"))):
        if value is not None and accepts(option, value):
            opts[option] = value
    opts = {k: v for k, v in opts.items() if v is not None}
    command = list(svc["command"]) if svc.get("command") is not None else None
    return image_of(project, name), command, opts, connect


def _aliases(svc: dict, network: str, name: str) -> list[str]:
    cfg = (svc.get("networks") or {}).get(network) or {}
    return [name] + [a for a in cfg.get("aliases") or [] if a != name]


def options_accepted(make_spec):
    """An ``accepts(option, value)`` for a ``make_spec``: does it take this option? (An unknown
    option is a UsageError naming it; a known one with any other problem is accepted.)"""
    cache: dict = {}

    def accepts(option: str, value) -> bool:
        if option not in cache:
            try:
                make_spec("scratch", None, **{option: value})
                cache[option] = True
            except UsageError as e:
                cache[option] = "unknown option" not in str(e)
            except Exception:  # noqa: BLE001 - the option is known, this value is not to its taste
                cache[option] = True
        return cache[option]

    return accepts
