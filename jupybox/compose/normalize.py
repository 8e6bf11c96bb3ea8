"""The merged model made explicit (compose-go's ``loader/normalize.go``, ``paths`` and ``types``).

- every service without ``network_mode`` is on the ``default`` network, which then exists;
- networks and volumes get their real names: ``<project>_<key>``, or their key when external;
- ``links``, ``network_mode: service:x`` and ``volumes_from`` imply ``depends_on``;
- relative paths (build contexts, env files, bind sources, ``~``) become absolute, from the
  project's directory;
- ``environment`` and ``build.args`` entries without a value take the project environment's
  value; ``env_file`` contents are read into ``environment`` (the service's own keys win);
- values get their types: commands become argument lists (shell words), a string healthcheck
  test ``["CMD-SHELL", s]``, durations Go's form (``1m30s``), sizes byte counts (as strings, like
  compose-go), ``KEY=VALUE`` lists mappings.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex

from ..units import parse_duration as go_parse_duration
from . import envfile
from .errors import ComposeError
from .interpolation import dotted
from .merge import _scalar_text

# -- units ----------------------------------------------------------------------------------------
def parse_duration(text) -> int:
    """Go's time.ParseDuration, plus d and w (str2duration, which compose-go uses) -> nanoseconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text * 10**9)  # a bare number: seconds (compose-go: a unitless "0" only)
    try:
        return go_parse_duration(text, days=True)
    except ValueError:
        raise ValueError(f"invalid duration {text!r}") from None


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 1m30s, 10s, 1h0m0s, 500ms, 1.5s, 0s."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return ("-" if neg else "") + _frac(ns, size) + unit
    h, rest = divmod(ns, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    out = f"{_frac(rest, 10**9)}s"
    if h or m:
        out = f"{m}m" + out
    if h:
        out = f"{h}h" + out
    return ("-" if neg else "") + out


def _frac(n: int, unit: int) -> str:
    whole, rest = divmod(n, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def ram_bytes(value) -> int:
    """docker/go-units RAMInBytes: 64M -> 67108864 (binary multiples); an int is bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    m = _RAM.match(str(value).strip())
    if not m:
        raise ValueError(f"invalid size {value!r}")
    mult = 1024 ** " kmgtp".index(m.group(2).lower()) if m.group(2) else 1
    return int(float(m.group(1)) * mult)


# -- project-level rules ----------------------------------------------------------------------------
def _expand_user(path: str) -> str:
    return os.path.expanduser(path) if path.startswith("~") else path


def _abs(path: str, workdir: str) -> str:
    path = _expand_user(path)
    return path if os.path.isabs(path) or not path else os.path.normpath(os.path.join(workdir, path))


def _is_remote(context: str) -> bool:
    return "://" in context or context.startswith("git@")


def _networks(model: dict) -> None:
    networks = dict(model.get("networks") or {})
    uses_default = False
    for name, svc in (model.get("services") or {}).items():
        if "network_mode" in svc or "provider" in svc:
            continue
        nets = svc.get("networks")
        if not nets:
            svc["networks"] = {"default": None}
            uses_default = True
        elif "default" in nets:
            uses_default = True
    if uses_default and "default" not in networks:
        networks["default"] = None
    if networks:
        model["networks"] = networks


def _implied_dependencies(svc: dict) -> None:
    deps = dict(svc.get("depends_on") or {})
    for link in svc.get("links") or []:
        target = str(link).split(":")[0]
        deps.setdefault(target, {"condition": "service_started", "restart": True, "required": True})
    for key in ("network_mode", "ipc", "pid", "uts", "cgroup"):
        ref = svc.get(key)
        if isinstance(ref, str) and ref.startswith("service:"):
            deps.setdefault(ref[len("service:"):], {"condition": "service_started", "restart": True, "required": True})
    for ref in svc.get("volumes_from") or []:
        if not str(ref).startswith("container:"):
            deps.setdefault(str(ref).split(":")[0],
                            {"condition": "service_started", "restart": False, "required": True})
    if deps:
        svc["depends_on"] = deps


def _resolve(values, env: dict, keep_empty: bool):
    """KEY entries without a value take the environment's; -> a mapping (None: unset)."""
    out: dict = {}
    if isinstance(values, list):
        for item in values:
            key, eq, value = str(item).partition("=")
            if key and key[-1].isspace():
                raise ValueError(f"environment variable {key!r} is declared with a trailing space")
            out[key] = value if eq else None
    elif isinstance(values, dict):
        out = {k: (None if v is None else _scalar_text(v)) for k, v in values.items()}
    resolved = {}
    for k, v in out.items():
        if v is None and k in env:
            v = env[k]
        if v is not None or keep_empty:
            resolved[k] = v
    return resolved


def _mapping(values) -> dict:
    """Labels and the like: KEY=VALUE items or a mapping -> {KEY: "VALUE"}."""
    if isinstance(values, dict):
        return {k: "" if v is None else _scalar_text(v) for k, v in values.items()}
    out = {}
    for item in values or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def normalize(model: dict, project: str, env: dict, workdir: str, where) -> dict:
    """The whole project, after merge: defaults, implied dependencies, names, absolute paths."""
    model = dict(model)
    model.pop("version", None)
    services = {name: dict(svc) for name, svc in (model.get("services") or {}).items()}
    model["services"] = services
    _networks(model)
    for name, svc in services.items():
        base = ("services", name)
        if "build" in svc:
            build = dict(svc["build"])
            build.setdefault("context", ".")
            if "dockerfile" not in build and "dockerfile_inline" not in build:
                build["dockerfile"] = "Dockerfile"
            if not _is_remote(str(build["context"])):
                build["context"] = _abs(str(build["context"]), workdir)
            if "args" in build:
                build["args"] = _resolve(build["args"], env, keep_empty=False)
            svc["build"] = build
        if "environment" in svc:
            try:
                svc["environment"] = _resolve(svc["environment"], env, keep_empty=True)
            except ValueError as e:
                raise ComposeError(str(e), *where(base + ("environment",)), dotted(base + ("environment",))) from None
        _implied_dependencies(svc)
        if "volumes" in svc:
            vols = []
            for i, vol in enumerate(svc["volumes"]):
                vol = dict(vol)
                if vol.get("target"):
                    vol["target"] = posixpath.normpath(vol["target"])
                if vol.get("type") == "bind":
                    if not vol.get("source"):
                        raise ComposeError('invalid mount config for type "bind": field source must not be empty',
                                           *where(base + ("volumes", i)), dotted(base + ("volumes", i)))
                    vol["source"] = _abs(vol["source"], workdir)
                vols.append(vol)
            svc["volumes"] = vols
        if "env_file" in svc:
            svc["env_file"] = [dict(e, path=_abs(str(e["path"]), workdir)) for e in svc["env_file"]]
        for key in ("labels", "annotations", "sysctls"):
            if key in svc:
                svc[key] = _mapping(svc[key])
    for kind in ("networks", "volumes", "configs", "secrets"):
        resources = model.get(kind)
        if not isinstance(resources, dict):
            continue
        named = {}
        for key, res in resources.items():
            res = dict(res or {})
            if res.get("name") is None:
                res["name"] = key if res.get("external") is True else f"{project}_{key}"
            if "labels" in res:
                res["labels"] = _mapping(res["labels"])
            named[key] = res
        model[kind] = named
    return model


def resolve_env_files(svc: dict, project_env: dict, base: tuple, where) -> None:
    """The service's env_file contents under its environment (its own keys win)."""
    own = svc.get("environment") or {}
    merged: dict = {}
    for i, ef in enumerate(svc.get("env_file") or []):
        path = ef["path"]
        if not os.path.exists(path):
            if ef.get("required", True):
                raise ComposeError(f"env file {path} not found", *where(base + ("env_file", i)),
                                   dotted(base + ("env_file", i)))
            continue

        def lookup(k):
            if k in project_env:
                return project_env[k]
            v = own.get(k)
            return v if v is not None else merged.get(k)

        merged.update(envfile.read(path, lookup))
    if merged or "environment" in svc:
        env = dict(merged)
        env.update(own)
        svc["environment"] = env


# -- types ------------------------------------------------------------------------------------------
def _words(value, path, where) -> list[str]:
    if isinstance(value, list):
        return [_scalar_text(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError as e:
        raise ComposeError(f"invalid command line: {e}", *where(path), dotted(path)) from None


def _duration(value, path, where) -> str:
    try:
        return go_duration(parse_duration(value))
    except ValueError as e:
        raise ComposeError(str(e), *where(path), dotted(path)) from None


def _bytes(value, path, where) -> str:
    try:
        return str(ram_bytes(value))
    except ValueError as e:
        raise ComposeError(str(e), *where(path), dotted(path)) from None


def typed_service(svc: dict, base: tuple, where) -> dict:
    """compose-go's types, as plain data: what ``config`` prints and the runtime reads."""
    svc = dict(svc)
    for key in ("command", "entrypoint"):
        if key in svc and svc[key] is not None:
            svc[key] = _words(svc[key], base + (key,), where)
    hc = svc.get("healthcheck")
    if isinstance(hc, dict):
        hc = dict(hc)
        if isinstance(hc.get("test"), str):
            hc["test"] = ["CMD-SHELL", hc["test"]]
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in hc:
                hc[key] = _duration(hc[key], base + ("healthcheck", key), where)
        svc["healthcheck"] = hc
    if "stop_grace_period" in svc:
        svc["stop_grace_period"] = _duration(svc["stop_grace_period"], base + ("stop_grace_period",), where)
    for key in ("mem_limit", "mem_reservation", "memswap_limit", "shm_size"):
        if key in svc:
            svc[key] = _bytes(svc[key], base + (key,), where)
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits")
    if isinstance(limits, dict):
        limits = dict(limits)
        if "memory" in limits:
            limits["memory"] = _bytes(limits["memory"], base + ("deploy", "resources", "limits", "memory"), where)
        if "cpus" in limits:
            try:
                limits["cpus"] = float(limits["cpus"])
            except ValueError:
                path = base + ("deploy", "resources", "limits", "cpus")
                raise ComposeError(f"invalid cpus {limits['cpus']!r}", *where(path), dotted(path)) from None
        deploy = dict(svc["deploy"])
        deploy["resources"] = dict(deploy["resources"], limits=limits)
        svc["deploy"] = deploy
    if "cpus" in svc:
        svc["cpus"] = float(svc["cpus"])
    if "expose" in svc:
        svc["expose"] = [_scalar_text(e) for e in svc["expose"]]
    if "build" in svc and "args" in svc["build"]:
        svc["build"] = dict(svc["build"], args={k: v for k, v in svc["build"]["args"].items()})
    return svc
