"""run, create, start, exec: the verbs that make processes.

Where no container can run (no namespace can be made: mybinder.org, some hardened hosts),
``run`` says so and exits 125, unless ``--no-isolation`` allows it to run the command as a plain
process (``runtime.unisolated``), with a warning. The root fast path pays nothing for this: the
mode is detected (a probe process) only with ``--no-isolation``, or after the launch failed to
create the namespaces; ``JUPYBOX_ISOLATION=none`` forces the fallback without a probe.
"""

from __future__ import annotations

import os
import sys

from .. import errors
from .status import container_status

RUN_HELP = "Create and run a new container from an image"


def add_run_options(p) -> None:
    """docker run's options; shared with `create` and the %%container magic."""
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, print the id")
    p.add_argument("--rm", dest="remove", action="store_true", help="remove the container when it exits")
    p.add_argument("--name", help="assign a name")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="set an environment variable")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE", help="read variables from a file")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="USER[:GROUP] (names or ids)")
    p.add_argument("-v", "--volume", dest="volumes", action="append", default=[], metavar="SRC:DST[:ro]",
                   help="bind mount a host path or a named volume")
    p.add_argument("--tmpfs", action="append", default=[], metavar="DST[:OPTS]", help="mount a tmpfs")
    p.add_argument("-h", "--hostname", help="container host name")
    p.add_argument("-m", "--memory", help="memory limit (e.g. 256m, 1g)")
    p.add_argument("--memory-swap", help="memory+swap limit; -1 unlimited (default: no swap)")
    p.add_argument("--cpus", help="number of CPUs (e.g. 0.5)")
    p.add_argument("-c", "--cpu-shares", type=int, help="relative CPU weight")
    p.add_argument("--pids-limit", help="maximum number of processes (-1 unlimited)")
    p.add_argument("--network", "--net",
                   help="bridge (the default, or $JUPYBOX_DEFAULT_NETWORK), none, host, or a network's name "
                        "(`network create`)")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOSTPORT:PORT[/udp]",
                   help="publish a container's port on the host")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port on a free host port")
    p.add_argument("--network-alias", action="append", default=[], metavar="NAME",
                   help="another name of the container on its user network")
    p.add_argument("--dns", action="append", default=[], metavar="IP", help="a nameserver for /etc/resolv.conf")
    p.add_argument("--add-host", action="append", default=[], metavar="HOST:IP", help="a line for /etc/hosts")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--entrypoint", help="override the image's ENTRYPOINT")
    p.add_argument("--init", dest="init", action="store_true", default=True,
                   help="run a small init as PID 1 (default)")
    p.add_argument("--no-init", dest="init", action="store_false", help="run the command as PID 1")
    p.add_argument("--privileged", action="store_true", help="all capabilities, no seccomp, no masked paths")
    p.add_argument("--cap-add", action="append", default=[], help="add a Linux capability")
    p.add_argument("--cap-drop", action="append", default=[], help="drop a Linux capability")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true",
                   help="accepted for docker compatibility: with -i on a terminal the container uses it directly")
    p.add_argument("-l", "--label", action="append", default=[], metavar="K=V", help="set metadata")
    p.add_argument("--restart", help="restart policy: no (default), on-failure[:N], always, unless-stopped")
    p.add_argument("--health-cmd", help="command to run to check health (in a shell)")
    p.add_argument("--health-interval", help="time between checks (default 30s)")
    p.add_argument("--health-timeout", help="maximum time one check may take (default 30s)")
    p.add_argument("--health-retries", type=int, help="consecutive failures that make it unhealthy (default 3)")
    p.add_argument("--health-start-period", help="time to start during which failures do not count (default 0s)")
    p.add_argument("--health-start-interval", help="time between checks during the start period (default 5s)")
    p.add_argument("--no-healthcheck", action="store_true", help="disable the image's HEALTHCHECK")
    p.add_argument("--stop-signal", help="signal to stop the container (default: the image's, else SIGTERM)")
    p.add_argument("--stop-timeout", type=int, help="seconds to wait at stop before SIGKILL (default 10)")
    p.add_argument("--device", dest="devices", action="append", default=[], metavar="HOST[:CONTAINER][:PERMS]",
                   help="give the container a host device node (PERMS rw or rwm: nothing else can be enforced)")
    p.add_argument("--gpus", help="refused: jupybox has no GPU runtime (use --device /dev/nvidiaN ...)")
    p.add_argument("--shm-size", help="size of /dev/shm (e.g. 64m, the default; 1g)")
    p.add_argument("--ulimit", dest="ulimits", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                   help="a resource limit (nofile, nproc, stack, core, ...; -1 unlimited)")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="no-new-privileges[=true|false], seccomp=unconfined|PROFILE.json, apparmor=unconfined")


def options_from_args(args) -> dict:
    labels = {}
    for item in args.label:
        k, _, v = item.partition("=")
        labels[k] = v
    return {
        "memory": args.memory, "memory_swap": args.memory_swap, "cpus": args.cpus, "cpu_shares": args.cpu_shares,
        "pids_limit": args.pids_limit, "env": args.env, "env_file": args.env_file, "workdir": args.workdir,
        "user": args.user, "volumes": args.volumes, "tmpfs": args.tmpfs, "hostname": args.hostname,
        "name": args.name, "network": args.network, "read_only": args.read_only, "entrypoint": args.entrypoint,
        "init": args.init, "privileged": args.privileged, "cap_add": args.cap_add, "cap_drop": args.cap_drop,
        "remove": args.remove, "interactive": args.interactive, "tty": args.tty, "labels": labels,
        "publish": args.publish, "publish_all": args.publish_all, "network_aliases": args.network_alias,
        "dns": args.dns, "add_hosts": args.add_host,
        "restart": args.restart, "healthcheck": healthcheck_from_args(args),
        "stop_signal": args.stop_signal, "stop_timeout": args.stop_timeout,
        "devices": args.devices, "gpus": args.gpus, "shm_size": args.shm_size, "ulimits": args.ulimits,
        "security_opt": args.security_opt,
    }


def healthcheck_from_args(args) -> dict | None:
    """docker's --health-* flags -> the API's healthcheck (None: the image's applies)."""
    if args.no_healthcheck:
        if args.health_cmd:
            raise errors.UsageError("--no-healthcheck conflicts with --health-* options")
        return {"test": ["NONE"]}
    timing = {"interval": args.health_interval, "timeout": args.health_timeout, "retries": args.health_retries,
              "start_period": args.health_start_period, "start_interval": args.health_start_interval}
    if not args.health_cmd:
        if any(v is not None for v in timing.values()):
            raise errors.UsageError("--health-* options need --health-cmd (this image's HEALTHCHECK cannot be "
                                    "changed without its command)")
        return None
    return {"test": ["CMD-SHELL", args.health_cmd], **{k: v for k, v in timing.items() if v is not None}}


def add_parsers(sub) -> None:
    p = sub.add_parser("run", help=RUN_HELP, add_help=False)
    p.add_argument("--help", action="help")
    add_run_options(p)
    # `run` only: the %%container magic falls back by itself, with its notice
    p.add_argument("--no-isolation", action="store_true",
                   help="where no container can run (no namespaces), run the command as a plain process on "
                        "the host instead, with rlimits for -m and --pids-limit: NOTHING IS ISOLATED")
    p.add_argument("image")
    p.set_defaults(func=cmd_run, command=[])

    p = sub.add_parser("create", help="Create a new container without starting it", add_help=False)
    p.add_argument("--help", action="help")
    add_run_options(p)
    p.add_argument("image")
    p.set_defaults(func=cmd_create, command=[])

    p = sub.add_parser("start", help="Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr and wait")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("exec", help="Run a command in a running container")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("container")
    p.set_defaults(func=cmd_exec, command=[])


class _LogTee:
    """Like docker, a container run in the foreground is logged too (`jupybox logs` shows it): its
    stdout and stderr come through pipes that two threads copy to ours and to its log files (the
    pipes hold what comes before the service has said which container it is). Not for --rm
    containers, whose logs nobody can read: they get our descriptors directly."""

    def __init__(self):
        self.pipes = [os.pipe(), os.pipe()]
        self.threads = []

    def fds(self) -> tuple[int, int]:
        return self.pipes[0][1], self.pipes[1][1]

    def start(self, rec) -> None:
        import threading

        for (r, w), path, target in zip(self.pipes, (rec.stdout_log, rec.stderr_log), (1, 2)):
            os.close(w)  # the container holds the write ends now: EOF when it is gone
            t = threading.Thread(target=self._copy, args=(r, path, target), daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def _copy(r: int, path, target: int) -> None:
        from ..runtime.fdio import chunks

        try:
            log = open(path, "ab", buffering=0)
        except OSError:
            log = None
        try:
            for data in chunks(r):
                if log is not None:
                    try:
                        log.write(data)
                    except OSError:
                        log = None  # a full disk: the terminal still gets everything
                try:
                    os.write(target, data)
                except OSError:
                    pass  # our own stdout closed (a pipe whose reader left): keep logging
        finally:
            os.close(r)
            if log is not None:
                log.close()

    def close(self) -> None:
        for t in self.threads:
            t.join()
        if not self.threads:  # the start failed: nothing was handed over
            for r, w in self.pipes:
                os.close(r)
                os.close(w)


def _removed(conn, cid: str) -> None:
    """Wait until the service has removed an --rm container (its network, cgroup, directory)."""
    from ..service.client import ServiceDied

    try:
        conn.event("removed", "id", cid)
    except ServiceDied:
        pass  # the next service cleans up what is left


def _stdin(interactive: bool) -> tuple[int, bool]:
    if interactive:
        return 0, False
    return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), True


def _foreground(ctx, op: str, stdin: int, tee: bool, **request) -> int:
    """``run`` or ``start -a`` in the foreground: the service starts the container with our stdio
    (through a log tee unless --rm); we pass signals on to its PID 1 and wait for its exit."""
    from ..runtime.signals import forwarding_signals

    conn = ctx.service()
    logtee = _LogTee() if tee else None
    stdio = (stdin, 1, 2) if logtee is None else (stdin, *logtee.fds())
    pid = None
    held: list[int] = []  # signals that came before the container did: passed on when it is there

    def forward(signum: int) -> None:
        if pid is None:
            held.append(signum)
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    try:
        with forwarding_signals(forward):
            removing = bool(request.get("spec", {}).get("remove"))
            reply = conn.call(op, fds=stdio, attached=True, **request, **({"awaits_removal": True} if removing else {}))
            pid = reply["pid"]
            if logtee is not None:
                logtee.start(ctx.engine.records.get(reply["id"]))
            for signum in held:
                forward(signum)
            event = conn.event("exit", "id", reply["id"])
        if removing:
            _removed(conn, reply["id"])
        code = event.get("exit_code")
        return 255 if code is None else code
    finally:
        if logtee is not None:
            logtee.close()


def _spec(args):
    from ..runtime.options import make_spec

    return make_spec(args.image, args.command, **options_from_args(args))


def cmd_create(args, ctx) -> int:
    ctx.print(ctx.service().call("create", spec=_spec(args).to_dict())["id"])
    return 0


def namespaces_failed(e: errors.JupyboxError) -> bool:
    from ..runtime.mode import namespaces_refused

    return namespaces_refused(e)


def no_containers(reason: str) -> errors.RuntimeFailure:
    return errors.RuntimeFailure(f"containers cannot run here: {reason}; `jupybox run --no-isolation` runs the "
                                 f"command as a plain process, without isolation")


def _mode(ctx):
    from ..paths import Layout
    from ..runtime import mode

    return mode.detect(str(Layout(ctx.root).ensure().tmp))


def cmd_run(args, ctx) -> int:
    no_isolation = getattr(args, "no_isolation", False)
    if (no_isolation or os.environ.get("JUPYBOX_ISOLATION", "").lower() == "none"
            or os.environ.get("JUPYBOX_NO_SERVICE")):
        m = _mode(ctx)
        if not m.isolated:
            if not no_isolation:
                raise no_containers(m.reason)
            return _run_unisolated(args, ctx, m.reason)
    try:
        return _run(args, ctx)
    except errors.RuntimeFailure as e:
        if not namespaces_failed(e):
            raise
        m = _mode(ctx)
        reason = m.reason if not m.isolated else str(e)
        if no_isolation:
            return _run_unisolated(args, ctx, reason)
        raise no_containers(reason) from None


def _run(args, ctx) -> int:
    spec = _spec(args)
    if os.geteuid() != 0:  # (root has cgroups: no need to import the engine to know it)
        _warn_unenforced(ctx, spec)
    stdin, opened = _stdin(args.interactive)
    try:
        if args.detach:
            # docker's -d -i: stdin stays open for the container (ours, when it is a pipe or a file)
            reply = ctx.service().call("run", fds=(stdin,) if args.interactive else (), spec=spec.to_dict(),
                                       attached=False)
            ctx.print(reply["id"])
            return 0
        return _foreground(ctx, "run", stdin, tee=not spec.remove, spec=spec.to_dict())
    finally:
        if opened:
            os.close(stdin)


def _run_unisolated(args, ctx, reason: str) -> int:
    """``run --no-isolation`` where no container can run: the command as a plain process, in the
    foreground, with this process forwarding the signals a container's monitor forwards."""
    from ..runtime import unisolated
    from ..runtime.signals import forwarding_signals

    if args.detach:
        raise errors.UsageError(f"-d needs isolation, and no container can run here ({reason})")
    options = options_from_args(args)
    for key in ("interactive", "tty"):
        options.pop(key, None)
    plan = unisolated.prepare(args.image, args.command, **options)
    print(f"jupybox: WARNING: no isolation ({reason}): running {plan.argv[0]} as a plain process on the "
          f"host; {plan.describe()}", file=ctx.err, flush=True)
    running = []  # the process, once started; a signal that comes before is held until then
    held: list[int] = []

    def forward(signum):
        if not running:
            held.append(signum)
            return
        try:
            running[0].kill(signum)
        except errors.JupyboxError:
            pass

    try:
        with forwarding_signals(forward):
            stdin, opened = _stdin(args.interactive)
            try:
                running.append(plan.start(stdin, 1, 2))
            finally:
                if opened:
                    os.close(stdin)
            proc = running[0]
            for sig in held:
                forward(sig)
            while True:
                try:
                    return proc.wait(timeout=1.0)
                except TimeoutError:
                    continue
    finally:
        if running and running[0].status == "running":  # we are going: it does not outlive us
            running[0].remove(force=True)


def _warn_unenforced(ctx, spec) -> None:
    """Rootless without cgroups: say in one line which limits are not enforced."""
    notice = ctx.engine.limits_notice(spec)
    if notice:
        print(f"jupybox: warning: {notice}", file=sys.stderr)


@container_status
def cmd_start(args, ctx) -> int:
    try:
        return _start(args, ctx)
    except errors.RuntimeFailure as e:
        if not namespaces_failed(e):
            raise
        from ..runtime import mode

        m = mode.detect()
        raise errors.RuntimeFailure(f"containers cannot run here: {m.reason if not m.isolated else e}") from None


def _start(args, ctx) -> int:
    engine = ctx.engine
    code = 0
    for ref in args.containers:
        rec = engine.records.get(ref)
        if args.attach:
            stdin, opened = _stdin(args.interactive)
            try:
                code = _foreground(ctx, "start", stdin, tee=not rec.config["spec"]["remove"], id=rec.id)
            finally:
                if opened:
                    os.close(stdin)
        else:
            ctx.service().call("start", id=rec.id, attached=False)
            ctx.print(ref)
    return code


@container_status
def cmd_exec(args, ctx) -> int:
    from ..runtime.options import parse_env, read_env_file
    from ..runtime.signals import forwarding_signals

    rec = ctx.engine.records.get(args.container)
    env = {}
    for path in args.env_file:
        env.update(read_env_file(path))
    env.update(parse_env(args.env))
    conn = ctx.service()
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        stdio = (devnull, devnull, devnull) if args.detach else (0 if args.interactive else devnull, 1, 2)
        pid = None

        def forward(signum: int) -> None:
            if pid is not None:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass

        with forwarding_signals(forward):
            reply = conn.call("exec", fds=stdio, id=rec.id, argv=list(args.command), env=env,
                              workdir=args.workdir, user=args.user, privileged=True if args.privileged else None)
            if args.detach:
                return 0
            pid = reply["pid"]
            return conn.event("exec-exit", "token", reply["token"])["exit_code"]
    finally:
        os.close(devnull)
