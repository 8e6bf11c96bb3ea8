"""A consistent project (compose-go's ``checkConsistency``), checked before anything is started.

References resolve (networks, volumes, depends_on), ``depends_on`` has no cycle, healthchecks start
with CMD, CMD-SHELL or NONE, no two mounts share a target, ``cpus``/``mem_limit``/``pids_limit``
agree with ``deploy.resources.limits``, and no two published ports of the project clash (the
same host port and protocol on the same or a wildcard address: only one could bind it). Each
error is one line with the file and line of the key.
"""

from __future__ import annotations

from . import graph
from .errors import ComposeError
from .interpolation import dotted


def _fail(message: str, where, path: tuple) -> ComposeError:
    file, line = where(path)
    return ComposeError(message, file, line, dotted(path))


def _fixed_ports(svc: dict) -> list[tuple[int, dict]]:
    out = []
    for i, p in enumerate(svc.get("ports") or []):
        published = str(p.get("published") or "")
        if published and "-" not in published and published.isdigit():
            out.append((i, {"host_ip": p.get("host_ip") or "", "host_port": int(published),
                            "protocol": p.get("protocol", "tcp")}))
    return out


def _clash(a: dict, b: dict) -> bool:
    if a["host_port"] != b["host_port"] or a["protocol"] != b["protocol"]:
        return False
    wild = ("", "0.0.0.0", "::")
    return a["host_ip"] in wild or b["host_ip"] in wild or a["host_ip"] == b["host_ip"]


def scale_of(svc: dict) -> int:
    if svc.get("scale") is not None:
        return int(svc["scale"])
    replicas = (svc.get("deploy") or {}).get("replicas")
    return int(replicas) if replicas is not None else 1


def check(services: dict, disabled: dict, networks: dict, volumes: dict, where) -> None:
    for name in sorted(services):
        svc = services[name]
        base = ("services", name)
        if "build" not in svc and not svc.get("image") and "provider" not in svc:
            raise _fail(f'service "{name}" has neither an image nor a build context specified', where, base)
        if svc.get("network_mode") and svc.get("networks"):
            raise _fail(f"service {name} declares mutually exclusive `network_mode` and `networks`", where,
                        base + ("network_mode",))
        for net in svc.get("networks") or {}:
            if net not in networks:
                raise _fail(f'service "{name}" refers to undefined network {net}', where, base + ("networks", net))
        hc = svc.get("healthcheck") or {}
        test = hc.get("test")
        if isinstance(test, list) and test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise _fail('healthcheck.test must start either by "CMD", "CMD-SHELL" or "NONE"', where,
                        base + ("healthcheck", "test"))
        for dep, cfg in (svc.get("depends_on") or {}).items():
            if dep in services:
                continue
            if dep in disabled and not (cfg or {}).get("required", True):
                continue
            raise _fail(f'service "{name}" depends on undefined service "{dep}"', where, base + ("depends_on", dep))
        mode = svc.get("network_mode")
        if isinstance(mode, str) and mode.startswith("service:") and mode[8:] not in services:
            raise _fail(f'service "{mode[8:]}" not found for network_mode \'service:{mode[8:]}\'', where,
                        base + ("network_mode",))
        targets: dict = {}
        for i, tmpfs in enumerate(svc.get("tmpfs") or []):
            targets[str(tmpfs).partition(":")[0]] = f"{dotted(base)}.tmpfs[{i}]"
        for i, vol in enumerate(svc.get("volumes") or []):
            if vol.get("type") == "volume" and vol.get("source") and vol["source"] not in volumes:
                raise _fail(f'service "{name}" refers to undefined volume {vol["source"]}', where,
                            base + ("volumes", i))
            if vol.get("target") in targets:
                raise _fail(f"target {vol['target']} already mounted as {targets[vol['target']]}", where,
                            base + ("volumes", i))
            targets[vol.get("target")] = f"{dotted(base)}.volumes[{i}]"
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        for short, long_ in (("cpus", "cpus"), ("mem_limit", "memory"), ("pids_limit", "pids")):
            if svc.get(short) not in (None, 0) and limits.get(long_) is not None:
                a, b = svc[short], limits[long_]
                if (float(a) != float(b)) if short == "cpus" else (str(a) != str(b)):
                    raise _fail(f"can't set distinct values on '{short}' and 'deploy.resources.limits.{long_}'",
                                where, base + (short,))
        scale = scale_of(svc)
        if scale < 0:
            raise _fail("scale must be greater than or equal to 0", where, base)
        if scale > 1 and svc.get("container_name"):
            raise _fail("can't set container_name and scale (or deploy.replicas): container names must be unique",
                        where, base + ("container_name",))
    cycle = graph.find_cycle(services)
    if cycle:
        raise _fail(f"dependency cycle detected: {' -> '.join(cycle)}", where,
                    ("services", cycle[0], "depends_on", cycle[1]))
    _check_ports(services, where)


def _check_ports(services: dict, where) -> None:
    seen: list[tuple[str, int, dict]] = []
    for name in sorted(services):
        svc = services[name]
        fixed = _fixed_ports(svc)
        for copy in range(max(scale_of(svc), 1 if fixed else 0)):
            for i, port in fixed:
                for other_name, other_i, other in seen:
                    if _clash(port, other):
                        who = f"service {other_name}" if other_name != name else "another replica of it"
                        raise _fail(f"port {port['host_port']}/{port['protocol']} is already published by {who} "
                                    f"(services.{other_name}.ports[{other_i}])", where, ("services", name, "ports", i))
                seen.append((name, i, port))
