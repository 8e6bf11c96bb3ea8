"""From docker's options to a ContainerSpec: the one translation the CLI, the API and the magics share.

``jupybox run -m 256m -v /data:/data:ro IMAGE cmd`` and ``jupybox.run(IMAGE, "cmd", memory="256m",
volumes=["/data:/data:ro"])`` both end in :func:`make_spec`.
"""

from __future__ import annotations

import os
import re
import shlex

from ..errors import UsageError
from ..units import parse_size
from .spec import ContainerSpec, Limits, Mount

RUN_OPTIONS = {
    "memory", "memory_swap", "cpus", "cpu_shares", "pids_limit", "env", "env_file", "workdir", "user",
    "volumes", "tmpfs", "hostname", "name", "network", "read_only", "entrypoint", "init", "privileged",
    "cap_add", "cap_drop", "remove", "interactive", "tty", "labels",
    "publish", "ports", "publish_all", "network_aliases", "dns", "add_hosts",
    "restart", "healthcheck", "stop_signal", "stop_timeout",
    "devices", "gpus", "shm_size", "ulimits", "security_opt",
}
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
HEALTH_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0, "start_interval": 5.0}


def parse_env(items) -> dict[str, str]:
    """'K=V' items (a bare 'K' takes the caller's value, like docker) or a dict."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    env = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid environment variable: {item!r}")
        if sep:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    return env


def read_env_file(path: str) -> dict[str, str]:
    try:
        with open(path) as f:
            lines = [ln.strip() for ln in f]
    except OSError as e:
        raise UsageError(f"open {path}: {e.strerror}") from None
    return parse_env([ln for ln in lines if ln and not ln.startswith("#")])


def parse_volume(text: str) -> Mount:
    """docker -v: SRC:DST[:ro|rw], NAME:DST[:ro], or DST alone (an anonymous volume)."""
    parts = text.split(":")
    if len(parts) == 1:
        return Mount(destination=parts[0], type="volume")
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise UsageError(f"invalid volume specification: {text!r}")
    mode = parts[2] if len(parts) == 3 else "rw"
    opts = set(mode.split(","))
    if not opts <= {"ro", "rw", "z", "Z"}:
        raise UsageError(f"invalid mode {mode!r} in volume specification {text!r}")
    src, dst = parts[0], parts[1]
    readonly = "ro" in opts
    if src.startswith("/") or src.startswith("."):
        return Mount(destination=dst, source=os.path.abspath(src), type="bind", readonly=readonly)
    return Mount(destination=dst, source=src, type="volume", readonly=readonly)


def parse_tmpfs(text: str) -> Mount:
    dst, _, opts = text.partition(":")
    return Mount(destination=dst, type="tmpfs", options=[o for o in opts.split(",") if o] or ["mode=1777"])


def _words(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _list(value) -> list[str]:
    """One string or a list of them."""
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _add_hosts(value) -> list[str]:
    """--add-host HOST:IP items, or docker-py's extra_hosts dict {host: ip}."""
    if isinstance(value, dict):
        return [f"{h}:{ip}" for h, ip in value.items()]
    return _list(value)


def default_network() -> str:
    """``bridge``, docker's default; ``$JUPYBOX_DEFAULT_NETWORK`` changes it (the test suite sets
    ``none``: its containers must not make bridges in the host's network namespace). Not root,
    ``host``: a bridge needs root, and a notebook user expects ``pip install`` to reach out."""
    return os.environ.get("JUPYBOX_DEFAULT_NETWORK") or ("bridge" if os.geteuid() == 0 else "host")


def make_spec(image: str, command=None, **opts) -> ContainerSpec:
    unknown = set(opts) - RUN_OPTIONS
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}")
    env = {}
    for path in opts.get("env_file") or []:
        env.update(read_env_file(path))
    env.update(parse_env(opts.get("env")))
    mounts = []
    for v in opts.get("volumes") or []:
        mounts.append(v if isinstance(v, Mount) else parse_volume(v))
    for t in opts.get("tmpfs") or []:
        mounts.append(t if isinstance(t, Mount) else parse_tmpfs(t))
    cpus = opts.get("cpus")
    try:
        cpus = float(cpus) if cpus is not None else None
    except ValueError:
        raise UsageError(f"invalid argument {cpus!r} for --cpus: a number is expected") from None
    if cpus:
        ncpu = os.cpu_count() or 1
        if not 0.01 <= cpus <= ncpu:
            raise UsageError(f"range of CPUs is from 0.01 to {ncpu:.4f}, as there are only {ncpu} CPUs available")
    workdir = opts.get("workdir")
    if workdir is not None and not str(workdir).startswith("/"):
        raise UsageError(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    hostname = opts.get("hostname")
    if hostname is not None and (not 0 < len(hostname) <= 64 or not _HOSTNAME.match(hostname)):
        raise UsageError(f"invalid hostname {hostname!r}: 1 to 64 characters, letters, digits, '-', '_' and '.'")
    pids = opts.get("pids_limit")
    if pids is not None:
        try:
            pids = int(pids)
        except ValueError:
            raise UsageError(f"invalid argument {pids!r} for --pids-limit") from None
        if pids < 0:
            pids = None
    limits = Limits(
        memory=parse_size(opts.get("memory"), "memory limit"),
        memory_swap=parse_size(opts.get("memory_swap"), "memory-swap limit"),
        cpus=cpus or None,
        cpu_shares=int(opts["cpu_shares"]) if opts.get("cpu_shares") else None,
        pids=pids,
    )
    if limits.memory == -1:
        limits.memory = None
    if limits.memory_swap is not None and limits.memory_swap != -1:
        if limits.memory is None:
            raise UsageError("you should always set the memory limit when using the memory-swap limit")
        if limits.memory_swap < limits.memory:
            raise UsageError("minimum memory-swap limit should be larger than the memory limit")
    ports = []
    if opts.get("publish") or opts.get("ports"):
        from ..network.ports import normalize

        ports = normalize(opts.get("publish")) + normalize(opts.get("ports"))
    restart = parse_restart(opts.get("restart"))
    if restart != "no" and opts.get("remove"):
        raise UsageError("conflicting options: cannot specify both --restart and --rm")
    entrypoint = opts.get("entrypoint")
    if entrypoint is not None:
        entrypoint = _words(entrypoint) if not isinstance(entrypoint, str) or entrypoint else []
    return ContainerSpec(
        image=image,
        command=_words(command),
        entrypoint=entrypoint,
        env=env,
        workdir=workdir,
        user=check_user(opts.get("user")),
        hostname=hostname,
        name=opts.get("name"),
        mounts=mounts,
        limits=limits,
        # docker's default; publishing a port needs a network, so -p/-P always mean bridge then
        network=opts.get("network") or ("bridge" if ports or opts.get("publish_all") else default_network()),
        ports=ports,
        publish_all=bool(opts.get("publish_all")),
        network_aliases=_list(opts.get("network_aliases")),
        dns=_list(opts.get("dns")),
        add_hosts=_add_hosts(opts.get("add_hosts")),
        readonly_rootfs=bool(opts.get("read_only")),
        init=opts.get("init", True) if opts.get("init") is not None else True,
        privileged=bool(opts.get("privileged")),
        cap_add=list(opts.get("cap_add") or []),
        cap_drop=list(opts.get("cap_drop") or []),
        remove=bool(opts.get("remove")),
        interactive=bool(opts.get("interactive")),
        tty=bool(opts.get("tty")),
        labels=dict(opts.get("labels") or {}),
        restart=restart,
        healthcheck=parse_healthcheck(opts.get("healthcheck")),
        stop_signal=_stop_signal(opts.get("stop_signal")),
        stop_timeout=_stop_timeout(opts.get("stop_timeout")),
        **host_options(opts),
    )


def host_options(opts: dict) -> dict:
    """--device, --gpus, --shm-size, --ulimit, --security-opt: checked, as a spec keeps them."""
    from . import devices, security_opt, ulimits

    if opts.get("gpus"):
        raise UsageError(devices.GPUS_REFUSED)
    shm = opts.get("shm_size")
    if shm not in (None, ""):
        shm = parse_size(shm, "--shm-size")
        if shm < 0:
            raise UsageError(f"invalid --shm-size {opts['shm_size']!r}: a size is expected (e.g. 64m, 1g)")
    given = opts.get("ulimits")
    if isinstance(given, dict) and "name" not in given:  # the API's {"nofile": "1024:2048"}
        given = [f"{k}={v}" for k, v in given.items()]
    return {
        "devices": [devices.parse_device(d) for d in _items(opts.get("devices"))],
        "shm_size": shm or None,  # 0: docker's default
        "ulimits": ulimits.parse_ulimits(_items(given)),
        "security_opt": security_opt.parse(_list(opts.get("security_opt")), read_file=security_opt.read_profile),
    }


def _items(value) -> list:
    """One item (a string or a dict) or a list of them."""
    if not value:
        return []
    return [value] if isinstance(value, (str, dict)) else list(value)


MAX_ID = 2**31 - 1  # docker: uids and gids must be in range 0-2147483647 (beyond, they wrap to root)


def check_user(user: str | None, what: str = "user") -> str | None:
    """USER[:GROUP]: a numeric part must be a valid id (a 32-bit id above 2**31 - 1 wraps, and
    4294967296 would be read as 0: root)."""
    if not user:
        return user
    for part in str(user).split(":", 1):
        if part.isdigit() and int(part) > MAX_ID:
            raise UsageError(f"invalid {what} {user!r}: uids and gids must be in range 0-{MAX_ID}")
        if part.startswith("-") and part[1:].isdigit():
            raise UsageError(f"invalid {what} {user!r}: uids and gids must be in range 0-{MAX_ID}")
    return str(user)


def parse_restart(value) -> str:
    """docker's --restart: no, on-failure[:N], always, unless-stopped."""
    if value in (None, "", "no"):
        return "no"
    text = str(value)
    name, _, count = text.partition(":")
    if name in ("always", "unless-stopped") and not count:
        return text
    if name == "on-failure":
        if not count:
            return text
        if count.isdigit():
            return f"on-failure:{int(count)}"
        raise UsageError(f"invalid restart policy {text!r}: the maximum retry count must be a number")
    if name in ("always", "unless-stopped", "no"):
        raise UsageError(f"invalid restart policy {text!r}: maximum retry count cannot be used with {name}")
    raise UsageError(f"invalid restart policy {text!r}: no, on-failure[:N], always or unless-stopped")


def parse_healthcheck(value) -> dict | None:
    """A healthcheck as the API takes it (``test`` in docker's form: ["CMD", ...], ["CMD-SHELL",
    "..."], ["NONE"], or a string for CMD-SHELL; durations in seconds or Go's form) -> checked,
    with docker's defaults filled in; None when not given (the image's own applies)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UsageError("healthcheck: a dict with test, interval, timeout, retries, start_period")
    unknown = set(value) - {"test"} - set(HEALTH_DEFAULTS)
    if unknown:
        raise UsageError(f"healthcheck: unknown key(s) {', '.join(sorted(unknown))}")
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not isinstance(test, (list, tuple)) or not test or not all(isinstance(t, str) for t in test):
        raise UsageError("healthcheck: test must be a command (a string, or [\"CMD\", ...] / [\"CMD-SHELL\", "
                         "\"...\"] / [\"NONE\"])")
    test = list(test)
    if test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        test = ["CMD"] + test
    if test[0] == "CMD-SHELL" and len(test) != 2:
        raise UsageError("healthcheck: CMD-SHELL takes one string")
    if test[0] == "CMD" and len(test) < 2:
        raise UsageError("healthcheck: CMD needs a command")
    out = {"test": test}
    for key, default in HEALTH_DEFAULTS.items():
        v = value.get(key)
        if v is None:
            out[key] = default
            continue
        if key == "retries":
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise UsageError(f"healthcheck: retries must be a whole number >= 0, not {v!r}")
            out[key] = v
            continue
        seconds = _seconds(v, f"healthcheck {key}")
        if seconds < 0 or (0 < seconds < 0.001):
            raise UsageError(f"healthcheck: {key} cannot be negative or less than 1ms")
        out[key] = seconds if seconds else default
    return out


def _seconds(value, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    from ..units import parse_duration

    try:
        return parse_duration(value) / 1e9
    except ValueError:
        raise UsageError(f"invalid {what}: {value!r} (a duration such as 30s, 1m30s, 500ms)") from None


def _stop_signal(value) -> str | None:
    if value in (None, ""):
        return None
    from .engine import signal_number

    signal_number(value)  # UsageError for an unknown one
    return str(value)


def _stop_timeout(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid --stop-timeout {value!r}: a number of seconds") from None
