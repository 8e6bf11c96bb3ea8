"""Short syntax to long syntax, and the defaults that go with it (compose-go's ``transform`` package).

After each file is merged, ``"8080:80"`` becomes ``{target: 80, published: "8080", protocol: tcp,
mode: ingress}``, ``"./src:/src:ro"`` becomes ``{type: bind, source: ./src, target: /src,
read_only: true, bind: {create_host_path: true}}``, a ``depends_on`` list becomes a mapping with
``condition: service_started, required: true``, ``build: ./dir`` becomes ``{context: ./dir}``,
``env_file: x`` becomes ``[{path: x, required: true}]``, a ``networks`` list a mapping, and
``external: {name: x}`` on a network or volume becomes ``external: true, name: x``. Errors name
the file and line (``where``).
"""

from __future__ import annotations

import ipaddress
import posixpath

from .errors import ComposeError
from .interpolation import dotted
from .merge import to_mapping


class _Bad(Exception):
    pass


# -- ports: docker's nat.ParsePortSpec -----------------------------------------------------------
def _port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo, 10)
        b = int(hi, 10) if sep else a
    except ValueError:
        raise _Bad(f"invalid port {text!r}") from None
    if not (0 <= a <= 65535 and 0 <= b <= 65535) or b < a:
        raise _Bad(f"invalid port range {text!r}")
    return a, b


def parse_port(spec: str) -> list[dict]:
    """``[[IP:]HOST:]CONTAINER[/PROTO]`` (ports or ranges) -> long-syntax ports."""
    parts = spec.split(":")
    if len(parts) == 1:
        ip, host, ctr = "", "", parts[0]
    elif len(parts) == 2:
        ip, host, ctr = "", parts[0], parts[1]
    else:
        ip, host, ctr = ":".join(parts[:-2]), parts[-2], parts[-1]
    ctr, _, proto = ctr.partition("/")
    proto = proto or "tcp"
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _Bad(f"invalid IP address: {ip}") from None
    if not ctr:
        raise _Bad(f"no port specified: {spec}<empty>")
    start, end = _port_range(ctr)
    hstart = hend = 0
    if host:
        hstart, hend = _port_range(host)
        if end - start != hend - hstart and end != start:
            raise _Bad(f"invalid ranges specified for container and host ports: {ctr} and {host}")
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise _Bad(f"invalid proto: {proto}")
    found = {}
    for i in range(end - start + 1):
        published = str(hstart + i) if host else ""
        if start == end and hstart != hend:
            published = f"{host.partition('-')[0] if host else ''}-{hend}"
        found[f"{start + i}/{proto.lower()}"] = {"target": start + i, "published": published}
    out = []
    for key in sorted(found):  # compose-go sorts the "PORT/PROTO" keys as strings
        p = found[key]
        entry = {"mode": "ingress"}
        if ip:
            entry["host_ip"] = ip
        entry["target"] = p["target"]
        if p["published"]:
            entry["published"] = p["published"]
        entry["protocol"] = key.partition("/")[2]
        out.append(entry)
    return out


def _ports(value, path, where) -> list:
    out = []
    for i, entry in enumerate(value):
        if isinstance(entry, bool):
            raise ComposeError("invalid port", *where(path + (i,)), dotted(path + (i,)))
        if isinstance(entry, (int, float, str)):
            text = str(int(entry)) if isinstance(entry, float) and entry.is_integer() else str(entry)
            try:
                out += parse_port(text)
            except _Bad as e:
                raise ComposeError(str(e), *where(path + (i,)), dotted(path + (i,))) from None
        elif isinstance(entry, dict):
            entry = dict(entry)
            entry.setdefault("protocol", "tcp")
            entry.setdefault("mode", "ingress")
            if "published" in entry and not isinstance(entry["published"], str):
                entry["published"] = str(entry["published"])
            out.append(entry)
    return out


# -- volumes: compose-go's format.ParseVolume -------------------------------------------------------
_BIND_OPTIONS = {"rprivate", "private", "rshared", "shared", "rslave", "slave"}
_SELINUX = {"z", "Z"}


def _is_file_path(source: str) -> bool:
    return bool(source) and source[0] in "./~"


def parse_volume(spec: str) -> dict:
    if not spec:
        raise _Bad("invalid empty volume spec")
    if len(spec) <= 2:
        return {"type": "volume", "target": spec}
    fields: list[str] = []
    buf = ""
    depth = 0
    i = 0
    while i < len(spec):
        c = spec[i]
        if c == "$" and i + 1 < len(spec) and spec[i + 1] == "{":
            depth += 1
            buf += c
        elif c == "}" and depth:
            depth -= 1
            buf += c
        elif c == ":" and not depth:
            fields.append(buf)
            buf = ""
        else:
            buf += c
        i += 1
    fields.append(buf)
    if any(f == "" for f in fields):
        raise _Bad(f"invalid spec: {spec}: empty section between colons")
    if len(fields) > 3:
        raise _Bad(f"invalid spec: {spec}: too many colons")
    vol: dict = {}
    if len(fields) == 1:
        vol["target"] = fields[0]
    else:
        vol["source"], vol["target"] = fields[0], fields[1]
    options = fields[2].split(",") if len(fields) == 3 else []
    read_only = False
    bind: dict = {}
    nocopy = False
    for opt in options:
        if opt == "ro":
            read_only = True
        elif opt == "rw":
            read_only = False
        elif opt == "nocopy":
            nocopy = True
        elif opt in _BIND_OPTIONS:
            bind["propagation"] = opt
        elif opt in _SELINUX:
            bind["selinux"] = opt
    out = {}
    if _is_file_path(vol.get("source", "")):
        out["type"] = "bind"
        out.update(vol)
        bind["create_host_path"] = True
        if read_only:
            out["read_only"] = True
        out["bind"] = bind
    else:
        out["type"] = "volume"
        out.update(vol)
        if read_only:
            out["read_only"] = True
        out["volume"] = {"nocopy": True} if nocopy else {}
    out["target"] = posixpath.normpath(out["target"]) if out["target"] else out["target"]
    return out


def _volumes(value, path, where) -> list:
    out = []
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            try:
                out.append(parse_volume(entry))
            except _Bad as e:
                raise ComposeError(str(e), *where(path + (i,)), dotted(path + (i,))) from None
        elif isinstance(entry, dict):
            entry = dict(entry)
            if isinstance(entry.get("bind"), dict):
                entry["bind"] = dict(entry["bind"])
                entry["bind"].setdefault("create_host_path", True)
            out.append(entry)
    return out


# -- the rest ---------------------------------------------------------------------------------------
def _env_files(value) -> list:
    items = [value] if isinstance(value, str) else list(value or [])
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"path": item, "required": True})
        elif isinstance(item, dict):
            item = dict(item)
            item.setdefault("required", True)
            out.append(item)
    return out


def _depends_on(value) -> dict:
    deps = to_mapping(value, {"condition": "service_started", "required": True})
    out = {}
    for name, dep in deps.items():
        dep = dict(dep or {})
        dep.setdefault("condition", "service_started")
        dep.setdefault("required", True)
        out[name] = dep
    return out


def _build(value) -> dict:
    build = {"context": value} if isinstance(value, str) else dict(value or {})
    build.setdefault("context", ".")
    return build


def _external(value: dict | None):
    if not isinstance(value, dict):
        return value
    ext = value.get("external")
    if isinstance(ext, dict):
        value = dict(value)
        value["external"] = True
        if "name" in ext:
            if "name" in value and value["name"] != ext["name"]:
                raise ComposeError("name and external.name conflict; only use name")
            value["name"] = ext["name"]
    return value


def service(svc: dict, path: tuple, where) -> dict:
    svc = dict(svc)
    if "build" in svc:
        svc["build"] = _build(svc["build"])
    if "depends_on" in svc:
        svc["depends_on"] = _depends_on(svc["depends_on"])
    if "env_file" in svc:
        svc["env_file"] = _env_files(svc["env_file"])
    if isinstance(svc.get("networks"), list):
        svc["networks"] = to_mapping(svc["networks"])
    if isinstance(svc.get("volumes"), list):
        svc["volumes"] = _volumes(svc["volumes"], path + ("volumes",), where)
    if isinstance(svc.get("ports"), list):
        svc["ports"] = _ports(svc["ports"], path + ("ports",), where)
    for key in ("dns", "dns_search", "tmpfs"):
        if isinstance(svc.get(key), str):
            svc[key] = [svc[key]]
    if isinstance(svc.get("dns"), list):  # compose-go's OmitEmpty
        svc["dns"] = [d for d in svc["dns"] if d not in (None, "")]
    return svc


def canonical(model: dict, where) -> dict:
    out = dict(model)
    if isinstance(out.get("services"), dict):
        out["services"] = {name: service(s, ("services", name), where) if isinstance(s, dict) else s
                           for name, s in out["services"].items()}
    for kind in ("networks", "volumes", "secrets", "configs"):
        if isinstance(out.get(kind), dict):
            resources = {}
            for name, res in out[kind].items():
                try:
                    resources[name] = _external(res)
                except ComposeError as e:
                    raise ComposeError(e.message, *where((kind, name)), f"{kind}.{name}") from None
            out[kind] = resources
    return out
