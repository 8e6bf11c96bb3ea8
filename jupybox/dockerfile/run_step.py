"""The RUN step: the command line (shell form, JSON form, heredocs), its mounts
(:mod:`.runmounts`), a container on the current state (:mod:`.runner`), and the layer taken from
its overlay upper directory (:mod:`.layers`)."""

from __future__ import annotations

import os

from .. import errors
from .cache import make_key
from .heredocs import parse_heredoc
from .instructions import RunInstr
from .runmounts import RunMounts
from .state import DEFAULT_SHELL, PROXY_ARGS, StageCtx


def run_argv(ctx: StageCtx, instr: RunInstr) -> tuple[list[str], list[tuple[str, str]], str]:
    """(argv, scripts, created_by) for a RUN, heredocs included (BuildKit's rules): a lone
    heredoc starting with ``#!`` is a script run from ``/dev/pipes/NAME`` (scripts: (path, text))."""
    shell = list(ctx.state.cfg.get("Shell") or DEFAULT_SHELL)
    scripts: list[tuple[str, str]] = []
    if instr.json:
        argv = list(instr.args)
        return argv, scripts, " ".join(argv)
    cmdline = instr.args[0]
    if instr.heredocs:
        doc = parse_heredoc(cmdline.strip())
        if len(instr.heredocs) == 1 and doc is not None:
            data = instr.heredocs[0].text()
            if data.startswith("#!"):
                argv = ["/dev/pipes/" + instr.heredocs[0].name]
                scripts.append((argv[0], data))
            else:
                argv = shell + [data]
        else:
            script = cmdline
            for h in instr.heredocs:
                script += "\n" + h.content + h.name
            argv = shell + [script]
    else:
        argv = shell + [cmdline]
    return argv, scripts, " ".join(argv)


def _write_scripts(b, scripts) -> tuple[list[str], list[str]]:
    """(volumes, files to remove) for heredoc scripts."""
    volumes, files = [], []
    for target, data in scripts:
        b.store.tmp.mkdir(parents=True, exist_ok=True)
        p = os.path.join(b.store.tmp, f"layer-script-{os.urandom(8).hex()}")
        files.append(p)
        with open(p, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(data)
        os.chmod(p, 0o755)
        volumes.append(f"{p}:{target}:ro")
    return volumes, files


PROXY_NAMES = sorted({k.lower() for k in PROXY_ARGS})


def proxy_env(build_args: dict[str, str], declared) -> dict[str, str]:
    """The proxy build args (``http_proxy`` or ``HTTP_PROXY``, any case) in both spellings, as
    BuildKit sets them for every RUN; not part of the cache key or the history (BuildKit's rule),
    unless the Dockerfile declares them with ARG."""
    out = {}
    for name in PROXY_NAMES:
        for k, v in build_args.items():
            if k.lower() == name:
                out[name] = out[name.upper()] = v
    return {k: v for k, v in out.items() if k not in declared}


def do_run(b, ctx: StageCtx, instr: RunInstr, base: dict):
    argv, scripts, created_by = run_argv(ctx, instr)
    image_env = ctx.state.env()
    args_env = {k: v for k, v in ctx.args.items() if v is not None and k not in image_env}
    proxies = proxy_env(b.build_args, ctx.args)
    b.consumed_args.update(k for k in b.build_args if k.lower() in PROXY_NAMES)
    if args_env:
        created_by = f"|{len(args_env)} " + " ".join(f"{k}={v}" for k, v in args_env.items()) + " " + created_by
    network = instr.network if instr.network not in (None, "default") else b.network
    mounts = RunMounts(b, ctx, instr, b._step_env(ctx))
    key = make_key([ctx.state.id, "RUN", argv, sorted(args_env.items()), network, [s[1] for s in scripts],
                    mounts.key])
    hit = b.cached(key)
    if hit is not None:
        return hit, True
    b.register(ctx.state)
    files: list[str] = []
    try:
        mounts.make()
        volumes, files = _write_scripts(b, scripts)
        if b.runner is None:
            from .runner import make_runner

            b.runner = make_runner(b.runner_kind, b.root)
        env = dict(args_env)
        env.update(proxies)
        env.update(mounts.env)

        def output(line: str) -> None:
            b._output.append(line)
            b.emit(kind="output", line=line, **base)

        def run():
            return b.runner.run(ctx.state.id, argv, env=env, network=network, volumes=volumes + mounts.binds,
                                tmpfs=mounts.tmpfs, on_output=output)

        try:
            res = run()
        except errors.ImageNotFound:
            # another build unregistered the same intermediate image: register it again
            b.registered = [i for i in b.registered if i != ctx.state.id]
            b.register(ctx.state)
            res = run()
    finally:
        mounts.release()
        for p in files:
            try:
                os.unlink(p)
            except OSError:
                pass
    try:
        if res.exit_code != 0:
            what = " ".join(argv) if instr.json else instr.args[0]
            why = " (killed: out of memory)" if res.oom_killed else ""
            err = instr.error(f"RUN {what}: the command returned a non-zero code: {res.exit_code}{why}")
            err.step_exit_code = res.exit_code
            raise err
        from .upper import commit_upper

        fs = b.image_fs(ctx.state)
        mounts.clean_stubs(str(res.upper), fs)
        layer = commit_upper(b.store, str(res.upper), fs)
    finally:
        b.runner.remove(res)
    new = b.commit(ctx, created_by, layer=layer)
    b.remember(key, new)
    return new, False
