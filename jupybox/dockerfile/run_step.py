"""The RUN step: the command line (shell form, JSON form, heredocs), a container on the current
state (:mod:`.runner`), and the layer taken from its overlay upper directory (:mod:`.layers`)."""

from __future__ import annotations

import os

from .. import errors
from .cache import make_key
from .instructions import RunInstr
from .state import DEFAULT_SHELL, PROXY_ARGS, StageCtx


def _run_argv(b, ctx: StageCtx, instr: RunInstr) -> tuple[list[str], list[str], str]:
    """(argv, volumes, created_by) for a RUN, heredocs included (BuildKit's rules)."""
    shell = list(ctx.state.cfg.get("Shell") or DEFAULT_SHELL)
    volumes: list[str] = []
    if instr.json:
        argv = list(instr.args)
        return argv, volumes, " ".join(argv)
    cmdline = instr.args[0]
    if instr.heredocs:
        from .parser import parse_heredoc

        doc = parse_heredoc(cmdline.strip())
        if len(instr.heredocs) == 1 and doc is not None:
            data = instr.heredocs[0].text()
            if data.startswith("#!"):
                volumes.append(("script", data))
                argv = ["/dev/pipes/" + instr.heredocs[0].name]
            else:
                argv = shell + [data]
        else:
            script = cmdline
            for h in instr.heredocs:
                script += "\n" + h.content + h.name
            argv = shell + [script]
    else:
        argv = shell + [cmdline]
    return argv, volumes, " ".join(argv)


def do_run(b, ctx: StageCtx, instr: RunInstr, base: dict):
    argv, scripts, created_by = _run_argv(b, ctx, instr)
    image_env = ctx.state.env()
    args_env = {k: v for k, v in ctx.args.items() if v is not None and k not in image_env}
    proxies = {k: b.build_args[k] for k in PROXY_ARGS if k in b.build_args and k not in ctx.args}
    for k in proxies:
        b.consumed_args.add(k)
    if args_env:
        created_by = f"|{len(args_env)} " + " ".join(f"{k}={v}" for k, v in args_env.items()) + " " + created_by
    network = instr.network if instr.network not in (None, "default") else b.network
    key = make_key([ctx.state.id, "RUN", argv, sorted(args_env.items()), network,
                    [s[1] for s in scripts]])
    hit = b.cached(key)
    if hit is not None:
        return hit, True
    b.register(ctx.state)
    volumes = []
    tmpfiles = []
    try:
        for _kind, data in scripts:
            b.store.tmp.mkdir(parents=True, exist_ok=True)
            p = os.path.join(b.store.tmp, f"layer-script-{os.urandom(8).hex()}")
            with open(p, "w") as f:
                f.write(data)
            os.chmod(p, 0o755)
            tmpfiles.append(p)
            volumes.append(f"{p}:{argv[0]}:ro")
        if b.runner is None:
            from .runner import make_runner

            b.runner = make_runner(b.runner_kind, b.root)
        env = dict(args_env)
        env.update(proxies)

        def output(line: str) -> None:
            b._output.append(line)
            b.emit(kind="output", line=line, **base)

        try:
            res = b.runner.run(ctx.state.id, argv, env=env, network=network, volumes=volumes,
                                  on_output=output)
        except errors.ImageNotFound:
            # another build unregistered the same intermediate image: register it again
            b.registered = [i for i in b.registered if i != ctx.state.id]
            b.register(ctx.state)
            res = b.runner.run(ctx.state.id, argv, env=env, network=network, volumes=volumes,
                                  on_output=output)
    finally:
        for p in tmpfiles:
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
        from .layers import commit_upper

        layer = commit_upper(b.store, str(res.upper), b.image_fs(ctx.state))
    finally:
        b.runner.remove(res)
    new = b.commit(ctx, created_by, layer=layer)
    b.remember(key, new)
    return new, False
