"""What ``ps``, ``top`` and ``images`` show, as rows of plain data (the CLI prints them as tables,
the notebook as HTML)."""

from __future__ import annotations

import shlex
import time

from .. import errors
from . import convert
from .runtime import label


def _age(iso: str) -> float:
    from ..runtime.container import age

    return age(iso) if iso and not iso.startswith("0001") else 0.0


def status_text(state: dict) -> str:
    """docker's STATUS column: ``Up 3 seconds (healthy)``, ``Exited (1) 2 minutes ago``, ``Created``."""
    from ..units import human_duration as ago

    status = state.get("Status")
    if status == "running":
        health = (state.get("Health") or {}).get("Status")
        return f"Up {ago(_age(state.get('StartedAt', '')))}" + (f" ({health})" if health else "")
    if status == "exited":
        return f"Exited ({state.get('ExitCode')}) {ago(_age(state.get('FinishedAt', '')))} ago"
    if state.get("Restarting"):
        return "Restarting"
    return str(status or "unknown").capitalize()


def ports_text(ports: dict) -> str:
    items = []
    for key, bindings in sorted((ports or {}).items()):
        for b in bindings or []:
            items.append(f"{b['HostIp']}:{b['HostPort']}->{key}")
    return ", ".join(items)


def ps_rows(session, services=None, all_: bool = False) -> list[dict]:
    """One row per container of the project (running ones unless ``all_``)."""
    rows = []
    for c in session.containers(services):
        try:
            info = c.inspect()
        except errors.ContainerNotFound:
            continue
        state = info["State"]
        if not all_ and state["Status"] != "running":
            continue
        argv = ([info["Path"]] if info.get("Path") else []) + list(info.get("Args") or [])
        ports = info["NetworkSettings"].get("Ports") or {}
        rows.append({
            "Name": c.name, "Image": c.image, "Command": shlex.join(argv), "Service": label(c, convert.SERVICE),
            "Number": int(label(c, convert.NUMBER) or 0), "Created": info.get("Created", ""),
            "State": state["Status"], "Health": (state.get("Health") or {}).get("Status", ""),
            "ExitCode": state.get("ExitCode", 0), "Status": status_text(state),
            "Publishers": [{"URL": b["HostIp"], "TargetPort": int(k.split("/")[0]), "PublishedPort": int(b["HostPort"]),
                            "Protocol": k.split("/")[1]} for k, bs in ports.items() for b in bs or []],
            "Ports": ports_text(ports),
            "ID": c.id,
        })
    return rows


def addresses(session) -> dict:
    """service -> its first published address ("127.0.0.1:8080"), or its address on its first
    network when it publishes nothing (what ``%%compose -o`` gives)."""
    out: dict = {}
    for c in session.containers():
        service = label(c, convert.SERVICE)
        if service in out or c.status != "running":
            continue
        ns = c.inspect()["NetworkSettings"]
        for key, bindings in sorted((ns.get("Ports") or {}).items()):
            for b in bindings or []:
                host = b["HostIp"] if b["HostIp"] not in ("", "0.0.0.0") else "127.0.0.1"
                out[service] = f"{host}:{b['HostPort']}"
                break
            if service in out:
                break
        if service not in out:
            for net in (ns.get("Networks") or {}).values():
                if net.get("IPAddress"):
                    out[service] = net["IPAddress"]
                    break
    return out


def top_rows(session, services=None) -> dict:
    """container name -> rows of docker top's columns (UID PID PPID C STIME TTY TIME CMD)."""
    import psutil

    out = {}
    for c in session.containers(services):
        if c.status != "running":
            continue
        try:
            root = psutil.Process(c.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            continue
        rows = []
        for p in procs:
            try:
                with p.oneshot():
                    cpu = p.cpu_times()
                    t = int(cpu.user + cpu.system)
                    rows.append([p.username(), str(p.pid), str(p.ppid()), str(int(p.cpu_percent(None))),
                                 time.strftime("%H:%M", time.localtime(p.create_time())), p.terminal() or "?",
                                 f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}",
                                 shlex.join(p.cmdline()) or f"[{p.name()}]"])
            except psutil.Error:
                continue
        out[c.name] = rows
    return out


def image_rows(session, services=None) -> list[dict]:
    rows = []
    for c in session.containers(services):
        try:
            img = session.rt.image(c.image)
            size = img.size
        except errors.JupyboxError:
            img, size = None, 0
        repo, _, tag = c.image.rpartition(":") if ":" in c.image.split("/")[-1] else (c.image, "", "latest")
        rows.append({"Container": c.name, "Repository": repo, "Tag": tag,
                     "ID": img.short_id if img is not None else "", "Size": size})
    return rows
