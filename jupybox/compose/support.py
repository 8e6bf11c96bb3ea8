"""What jupybox can honour of a project, checked before anything starts.

Keys of the spec that jupybox cannot honour (``devices``, ``secrets``, ``network_mode:
service:x``, IPv6 ports, an internal network, a volume driver...) are refused with the file and
line: a project that silently lost part of its meaning is worse than an error.
"""

from __future__ import annotations

from .convert import check_restart, restart_policy
from .errors import ComposeError
from .interpolation import dotted

# keys with an effect here, or none needed (profiles, expose: every port is reachable on the network)
SUPPORTED = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes",
    "tmpfs", "networks", "network_mode", "depends_on", "links", "healthcheck", "restart", "deploy",
    "mem_limit", "memswap_limit", "cpus", "cpu_shares", "pids_limit", "user", "working_dir", "hostname",
    "labels", "init", "read_only", "privileged", "cap_add", "cap_drop", "stop_signal", "stop_grace_period",
    "profiles", "container_name", "dns", "extra_hosts", "stdin_open", "tty", "scale", "pull_policy",
    "logging", "platform",
}
DEPLOY_SUPPORTED = {"resources", "restart_policy", "replicas", "mode", "labels"}
LIMITS_SUPPORTED = {"cpus", "memory", "pids"}


def _unsupported(project, path: tuple, what: str) -> ComposeError:
    file, line = project.where(path)
    return ComposeError(f"{what} is not supported by jupybox", file, line, dotted(path))


def check_service(project, name: str) -> None:
    """Refuse, with file:line, what this service asks for and jupybox cannot do."""
    svc = project.services[name]
    base = ("services", name)
    for key in svc:
        if key not in SUPPORTED and not key.startswith("x-"):
            raise _unsupported(project, base + (key,), f"'{key}'")
    deploy = svc.get("deploy") or {}
    for key in deploy:
        if key not in DEPLOY_SUPPORTED and not key.startswith("x-"):
            raise _unsupported(project, base + ("deploy", key), f"'deploy.{key}'")
    if deploy.get("mode") not in (None, "replicated"):
        raise _unsupported(project, base + ("deploy", "mode"), f"deploy mode {deploy['mode']!r}")
    resources = deploy.get("resources") or {}
    for key in resources:
        if key not in ("limits",) and not key.startswith("x-"):
            raise _unsupported(project, base + ("deploy", "resources", key), f"'deploy.resources.{key}'")
    for key in resources.get("limits") or {}:
        if key not in LIMITS_SUPPORTED and not key.startswith("x-"):
            raise _unsupported(project, base + ("deploy", "resources", "limits", key), f"a limit on {key}")
    mode = svc.get("network_mode")
    if mode is not None and mode not in ("none", "host", "bridge"):
        raise _unsupported(project, base + ("network_mode",), f"network_mode {mode!r}")
    logging = svc.get("logging") or {}
    if logging.get("driver") not in (None, "json-file", "local"):
        raise _unsupported(project, base + ("logging", "driver"), f"the {logging['driver']} logging driver")
    for i, p in enumerate(svc.get("ports") or []):
        if ":" in str(p.get("host_ip") or ""):
            raise _unsupported(project, base + ("ports", i), "an IPv6 host address")
        if p.get("protocol", "tcp") not in ("tcp", "udp"):
            raise _unsupported(project, base + ("ports", i), f"protocol {p['protocol']!r}")
        if p.get("mode", "ingress") not in ("ingress", "host"):
            raise _unsupported(project, base + ("ports", i), f"port mode {p['mode']!r}")
    for i, v in enumerate(svc.get("volumes") or []):
        if v.get("type") not in ("bind", "volume", "tmpfs"):
            raise _unsupported(project, base + ("volumes", i), f"a {v.get('type')} mount")
        prop = (v.get("bind") or {}).get("propagation")
        if prop not in (None, "rprivate", "private"):
            raise _unsupported(project, base + ("volumes", i), f"bind propagation {prop!r}")
    if restart_policy(svc) is not None:
        try:
            check_restart(restart_policy(svc))
        except ValueError as e:
            file, line = project.where(base + ("restart",))
            raise ComposeError(str(e), file, line, dotted(base + ("restart",))) from None
    if svc.get("stop_signal") is not None and not _is_signal(svc["stop_signal"]):
        file, line = project.where(base + ("stop_signal",))
        raise ComposeError(f"invalid signal {svc['stop_signal']!r}", file, line, dotted(base + ("stop_signal",)))
    for net in svc.get("networks") or {}:
        cfg = (svc["networks"] or {}).get(net) or {}
        for key in cfg:
            if key not in ("aliases", "priority", "gw_priority") and not key.startswith("x-"):
                raise _unsupported(project, base + ("networks", net, key), f"'networks.{net}.{key}'")


def _is_signal(value) -> bool:
    import signal

    text = str(value).upper()
    if text.isdigit():
        return 0 < int(text) < signal.NSIG
    return hasattr(signal, text if text.startswith("SIG") else "SIG" + text)




NETWORK_KEYS = {"name", "driver", "external", "labels", "ipam", "attachable"}
VOLUME_KEYS = {"name", "driver", "external", "labels"}


def check_resources(project, services) -> None:
    """The networks and volumes these services use: bridge networks with at most one IPv4
    subnet, local volumes."""
    nets = sorted({n for s in services for n in project.services[s].get("networks") or {}})
    for key in nets:
        cfg = project.networks.get(key) or {}
        base = ("networks", key)
        if cfg.get("external"):
            continue
        for k in cfg:
            if k not in NETWORK_KEYS and not k.startswith("x-"):
                raise _unsupported(project, base + (k,), f"'networks.{key}.{k}'")
        if cfg.get("driver") not in (None, "bridge"):
            raise _unsupported(project, base + ("driver",), f"network driver {cfg['driver']!r}")
        ipam = cfg.get("ipam") or {}
        configs = ipam.get("config") or []
        if ipam.get("driver") not in (None, "default") or len(configs) > 1 or any(
                ":" in str(c.get("subnet", "")) or set(c) - {"subnet", "gateway"} for c in configs):
            raise _unsupported(project, base + ("ipam",), "this ipam configuration (one IPv4 subnet and gateway)")
    vols = sorted({v["source"] for s in services for v in project.services[s].get("volumes") or []
                   if v.get("type") == "volume" and v.get("source")})
    for key in vols:
        cfg = project.volumes.get(key) or {}
        base = ("volumes", key)
        if cfg.get("external"):
            continue
        for k in cfg:
            if k not in VOLUME_KEYS and not k.startswith("x-"):
                raise _unsupported(project, base + (k,), f"'volumes.{key}.{k}'")
        if cfg.get("driver") not in (None, "local"):
            raise _unsupported(project, base + ("driver",), f"volume driver {cfg['driver']!r}")


def check(project, services) -> None:
    for name in services:
        check_service(project, name)
    check_resources(project, services)
