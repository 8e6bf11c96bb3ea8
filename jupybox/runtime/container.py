"""The Python face of one container: what ``jupybox.run`` returns and ``jupybox ps`` lists."""

from __future__ import annotations

import os
import signal
import time

from .. import errors
from .engine import Engine, signal_number
from .records import Record
from .state import State, Status


class Container:
    """A handle on a container; cheap to make, always reads fresh state from disk.

    What changes a container (start, stop, kill, exec, remove) is asked of the store's service,
    its monitor (``service()`` returns the client, connecting on first use); what reads it
    (state, logs, stats, inspect) reads the store directly."""

    def __init__(self, engine: Engine, record: Record, service=None, name: str | None = None):
        self._engine = engine
        self._record = record
        self._name = name  # kept: an --rm container's record goes with it, its name stays known
        self._service = service  # () -> the service's client
        self._last: dict | None = None  # the last exit wait() saw

    # -- identity ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def short_id(self) -> str:
        return self._record.id[:12]

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self._record.name
        return self._name

    @property
    def image(self) -> str:
        return self._record.config["image"]["ref"]

    @property
    def config(self) -> dict:
        return self._record.config

    def __repr__(self) -> str:
        try:
            return f"<Container {self.name} ({self.short_id}) {self.status}>"
        except errors.JupyboxError:
            return f"<Container {self.short_id} removed>"

    # -- state -------------------------------------------------------------------------------
    def state(self) -> State:
        state = self._engine.reconcile(self._record)
        last = self._last
        if last is not None and "exit_code" in last and state.status is Status.RUNNING:
            # wait() has the exit from the service, which writes it down a moment later
            state.status, state.exit_code = Status.EXITED, last["exit_code"]
            state.oom_killed, state.pid = bool(last.get("oom_killed")), 0
        return state

    @property
    def status(self) -> str:
        return self.state().status.value

    @property
    def pid(self) -> int:
        return self.state().pid

    @property
    def exit_code(self) -> int | None:
        return self.state().exit_code

    @property
    def oom_killed(self) -> bool:
        return self.state().oom_killed

    @property
    def limits(self):
        from .spec import Limits

        return Limits(**self._record.config["spec"]["limits"])

    # -- verbs -------------------------------------------------------------------------------
    def _client(self):
        if self._service is None:
            raise errors.RuntimeFailure("this container handle has no service to ask")
        return self._service()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the container exits; return its exit code (docker's convention)."""
        if self._last is not None and "exit_code" in self._last:
            code = self._last.get("exit_code")  # seen already (start() forgets it)
            return code if code is not None else -1
        client = self._client()
        if client.has_exit(self.id) or client.started(self.id):
            result = client.wait_exit(self.id, timeout)
        elif timeout is None:
            result = client.request("wait", id=self.id, timeout=1e9)
        else:
            result = self._poll_exit(timeout)
        self._last = result
        code = result.get("exit_code")
        return code if code is not None else -1

    def _poll_exit(self, timeout: float) -> dict:
        """The exit of a container another client started, read from its state (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self._engine.reconcile(self._record)
            if state.status is not Status.RUNNING:
                return {"exit_code": state.exit_code, "oom_killed": state.oom_killed, "extra": state.extra,
                        "error": state.error}
            if time.monotonic() >= deadline:
                raise TimeoutError(f"container {self.name} still running")
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def result(self) -> dict:
        """Exit code, OOM flag, peak memory of the last run (after wait(); works after --rm too)."""
        if self._last is None:
            self.wait()
        return self._last

    def stats(self):
        return self._engine.stats(self._record)

    def kill(self, sig: int | str = signal.SIGKILL) -> None:
        self._client().request("kill", id=self.id, signal=signal_number(sig))

    def stop(self, timeout: float = 10) -> None:
        self._client().request("stop", id=self.id, timeout=timeout)

    def start(self, *, stdin=None, stdout=None, stderr=None, attach: bool = False) -> "Container":
        """Start it (again). stdin/stdout/stderr: file objects or fds (None: /dev/null and its log
        files); ``attach=True``: it dies with this process, as a container from ``jupybox.run``."""
        self._last = None  # the last run's exit is no longer the news
        if stdin is None and stdout is None and stderr is None:
            self._client().start(self.id, attached=attach)
            return self
        fds, opened = stdio_fds(stdin, stdout, stderr)
        try:
            self._client().start(self.id, stdio=fds, attached=attach)
        finally:
            for fd in opened:
                os.close(fd)
        return self

    def remove(self, force: bool = False) -> None:
        if self._last is not None and self._removed_by_service():
            return  # an --rm container that has exited: its service is removing it
        self._client().request("remove", id=self.id, force=force)

    def _removed_by_service(self) -> bool:
        try:
            return bool(self._record.config["spec"].get("remove"))
        except errors.ContainerNotFound:
            return True

    def exec(self, command, *, env=None, workdir=None, user=None, stdout=None, stderr=None, stdin=None) -> int:
        from .options import _words, parse_env

        argv = _words(command)
        stdio = stdio_fds(stdin, stdout, stderr)
        try:
            return self._client().exec(self.id, argv, parse_env(env or {}), workdir, user, stdio[0])
        finally:
            for fd in stdio[1]:
                os.close(fd)

    def logs(self, stdout: bool = True, stderr: bool = True, tail: int | None = None) -> str:
        parts = []
        for want, path in ((stdout, self._record.stdout_log), (stderr, self._record.stderr_log)):
            if want:
                try:
                    parts.append(path.read_bytes())
                except FileNotFoundError:
                    pass
        data = b"".join(parts).decode(errors="replace")
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = "".join(lines[-tail:] if tail else [])
        return data

    def inspect(self) -> dict:
        return inspect_record(self._engine, self._record)

    def log_paths(self) -> tuple[str, str]:
        """Where its stdout and stderr are logged (for a reader that follows them)."""
        return str(self._record.stdout_log), str(self._record.stderr_log)

    def ports(self) -> dict:
        """Published ports while it runs: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}."""
        return network_settings(self._engine, self._record)["Ports"]


def stdio_fds(stdin, stdout, stderr):
    """File objects, fds or None (/dev/null) → three fds, plus the ones we opened and must close."""
    opened = []
    fds = []
    for obj, mode in ((stdin, os.O_RDONLY), (stdout, os.O_WRONLY), (stderr, os.O_WRONLY)):
        if obj is None:
            fd = os.open("/dev/null", mode | os.O_CLOEXEC)
            opened.append(fd)
        elif isinstance(obj, int):
            fd = obj
        else:
            fd = obj.fileno()
        fds.append(fd)
    return tuple(fds), opened


def _docker_status(state: State) -> str:
    if state.status is Status.EXITED and state.restarting:
        return "restarting"
    return {Status.EXITED: "exited", Status.RUNNING: "running", Status.CREATED: "created"}.get(
        state.status, state.status.value
    )


def _restart_policy(policy: str) -> dict:
    name, _, count = (policy or "no").partition(":")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count) if count else 0}


def _healthcheck_config(check: dict | None) -> dict | None:
    """docker's Config.Healthcheck: durations in nanoseconds."""
    if not check:
        return None
    out = {"Test": check["test"]}
    for key, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                       ("start_interval", "StartInterval")):
        out[field] = int(check[key] * 1e9)
    out["Retries"] = check["retries"]
    return out


def network_settings(engine: Engine, rec: Record) -> dict:
    """docker's NetworkSettings: addresses on each network, published ports (live values)."""
    spec = rec.config["spec"]
    if spec["network"] in ("none", "host"):
        return {"IPAddress": "", "Gateway": "", "MacAddress": "", "Ports": {},
                "Networks": {spec["network"]: {"IPAddress": "", "Gateway": "", "MacAddress": "", "Aliases": None}}}
    from ..network import networks

    nets = networks(engine.layout)
    live = nets.endpoints_of(rec.id)
    out = {"IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "", "Ports": {}, "Networks": {}}
    for w in nets.container_networks(rec):
        net, ep = live.get(w["name"], (None, None))
        entry = {"Aliases": w.get("aliases") or None, "NetworkID": net["id"] if net else "",
                 "IPAddress": ep["ip"] if ep else "", "IPPrefixLen": int(net["subnet"].split("/")[1]) if ep else 0,
                 "Gateway": net["gateway"] if ep else "", "MacAddress": ep["mac"] if ep else ""}
        out["Networks"][w["name"]] = entry
        if ep and ep.get("primary"):
            out.update(IPAddress=entry["IPAddress"], IPPrefixLen=entry["IPPrefixLen"], Gateway=entry["Gateway"],
                       MacAddress=entry["MacAddress"])
            for p in ep.get("ports", []):
                out["Ports"].setdefault(f"{p['container_port']}/{p['protocol']}", []).append(
                    {"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])})
    return out


def inspect_record(engine: Engine, rec: Record) -> dict:
    state = engine.reconcile(rec)
    cfg = rec.config
    spec = cfg["spec"]
    limits = spec["limits"]
    lowers = cfg["rootfs"]["lowers"]
    binds = [
        f"{m['source']}:{m['destination']}{':ro' if m.get('readonly') else ''}"
        for m in cfg["mounts"] if m["type"] == "bind" and not m.get("volume")
    ]
    mounts = []
    for m in cfg["mounts"]:
        if m.get("volume"):
            mounts.append({"Type": "volume", "Name": m["volume"], "Source": m["source"], "Destination": m["destination"],
                           "Driver": "local", "RW": not m.get("readonly"), "Mode": "ro" if m.get("readonly") else "z"})
        elif m["type"] == "bind":
            mounts.append({"Type": "bind", "Source": m["source"], "Destination": m["destination"],
                           "RW": not m.get("readonly"), "Mode": "ro" if m.get("readonly") else ""})
        else:
            mounts.append({"Type": "tmpfs", "Destination": m["destination"], "RW": True})
    memory = limits.get("memory") or 0
    swap = limits.get("memory_swap")
    return {
        "Id": rec.id,
        "Created": cfg.get("created", ""),
        "Path": cfg["argv"][0],
        "Args": cfg["argv"][1:],
        "State": {
            "Status": _docker_status(state),
            "Running": state.status is Status.RUNNING,
            "Paused": False,
            "Restarting": state.status is Status.EXITED and state.restarting,
            "OOMKilled": state.oom_killed,
            "Dead": state.status is Status.DEAD,
            "Pid": state.pid if state.status is Status.RUNNING else 0,
            "ExitCode": state.exit_code if state.exit_code is not None else 0,
            "Error": state.error,
            "StartedAt": state.started_at or "0001-01-01T00:00:00Z",
            "FinishedAt": state.finished_at or "0001-01-01T00:00:00Z",
            **({"Health": state.health} if state.health else {}),
        },
        "Image": cfg["image"]["id"],
        "Name": "/" + rec.name,
        "RestartCount": state.restart_count,
        "Driver": "overlay",
        "LogPath": str(rec.stdout_log),
        "HostConfig": {
            "Binds": binds or None,
            "NetworkMode": spec["network"],
            "AutoRemove": spec["remove"],
            "RestartPolicy": _restart_policy(spec.get("restart", "no")),
            "Privileged": spec["privileged"],
            "ReadonlyRootfs": spec["readonly_rootfs"],
            "CapAdd": spec["cap_add"] or None,
            "CapDrop": spec["cap_drop"] or None,
            "Init": spec["init"],
            "Memory": memory,
            "MemorySwap": swap if swap is not None else (memory or 0),
            "NanoCpus": int((limits.get("cpus") or 0) * 1e9),
            "CpuShares": limits.get("cpu_shares") or 0,
            "PidsLimit": limits.get("pids"),
            "Tmpfs": {m["destination"]: ",".join(m.get("options", [])) for m in cfg["mounts"] if m["type"] == "tmpfs"} or None,
            "PortBindings": _port_bindings(cfg.get("ports") or []),
            "PublishAllPorts": bool(spec.get("publish_all")),
            "Dns": spec.get("dns") or [],
            "ExtraHosts": spec.get("add_hosts") or None,
            "Devices": [{"PathOnHost": d["path_on_host"], "PathInContainer": d.get("path_in_container") or d["path_on_host"],
                         "CgroupPermissions": d.get("permissions") or "rwm"} for d in spec.get("devices") or []],
            "ShmSize": spec.get("shm_size") or 64 << 20,
            "Ulimits": [{"Name": u["name"], "Soft": u["soft"], "Hard": u["hard"]} for u in spec.get("ulimits") or []],
            "SecurityOpt": spec.get("security_opt") or None,
        },
        "NetworkSettings": network_settings(engine, rec),
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(reversed(lowers)),
                "UpperDir": str(rec.upper),
                "WorkDir": str(rec.work),
                "MergedDir": str(rec.rootfs),
            },
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": cfg.get("hostname", ""),
            "User": cfg["user"],
            "Env": [f"{k}={v}" for k, v in cfg["env"].items()],
            "Cmd": spec["command"] or None,
            "Entrypoint": spec["entrypoint"],
            "Image": cfg["image"]["ref"],
            "WorkingDir": cfg["cwd"],
            "Labels": spec["labels"],
            "StopSignal": cfg.get("stop_signal", "SIGTERM"),
            **({"StopTimeout": spec["stop_timeout"]} if spec.get("stop_timeout") is not None else {}),
            **({"Healthcheck": _healthcheck_config(cfg.get("healthcheck"))} if cfg.get("healthcheck") else {}),
        },
    }


def _port_bindings(ports: list[dict]) -> dict:
    out: dict = {}
    for p in ports:
        out.setdefault(f"{p['container_port']}/{p['protocol']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"]) if p["host_port"] else ""})
    return out


def age(iso: str) -> float:
    """Seconds since an ISO timestamp written by now_iso()."""
    if not iso:
        return 0.0
    try:
        t = time.mktime(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except ValueError:
        return 0.0
    return max(0.0, time.time() - t)
