"""The ``jupybox`` command line: docker's verbs, docker's exit codes.

Exceptions become exit codes here and only here: a JupyboxError prints one line on stderr and
exits with its ``exit_code`` (125 for jupybox's own errors, 126/127 for a command that cannot
run); ``run`` exits with the container's own status.
"""

from __future__ import annotations

import os
import sys

from ..errors import JupyboxError


class Context:
    """What a verb needs: the root, and the engine made on first use."""

    def __init__(self, root=None, out=None, err=None):
        self.root = root
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._engine = None
        self.prewarmed = None  # an Engine.prepare() made while the image is resolved

    def take_prewarmed(self):
        pw, self.prewarmed = self.prewarmed, None
        return pw

    def discard_prewarmed(self) -> None:
        pw = self.take_prewarmed()
        if pw:
            pw.discard()

    @property
    def engine(self):
        if self._engine is None:
            from ..runtime.engine import Engine

            self._engine = Engine(self.root)
        return self._engine

    def print(self, *args, **kw) -> None:
        print(*args, file=self.out, **kw)


def _prewarm(ctx: Context, args) -> None:
    """For an attached `run`, make the cgroup and namespaces while the image is resolved.

    The first write to a v1 cgroup.procs after an idle moment waits for an RCU grace period
    (8-16 ms here); done now, in a child, it overlaps with the image lookup and the container's
    record being written.
    """
    if args.verb != "run" or args.detach or os.geteuid() != 0:
        return
    if args.remove and not args.tty:
        from ..runtime import service

        if service.enabled():
            return  # the store's launcher daemon has sandboxes ready
    from .. import errors

    try:
        ctx.prewarmed = ctx.engine.prepare(args.network)
    except (errors.JupyboxError, OSError):
        pass  # the normal path will report what is wrong


def execute(argv: list[str], ctx: Context | None = None, prewarm: bool = False) -> int:
    """Parse and run one command line; raise JupyboxError for the caller to report."""
    from .parser import _HelpShown, build, parse, verb_of

    parser = build(verb=verb_of(argv))
    try:
        args = parse(parser, argv)
    except _HelpShown as h:
        return h.status
    if ctx is None:
        ctx = Context(args.root)
    elif args.root:
        ctx.root = args.root
    if prewarm:
        _prewarm(ctx, args)
    try:
        code = args.func(args, ctx)
        return 0 if code is None else code
    finally:
        ctx.discard_prewarmed()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = execute(argv, prewarm=True)
    except JupyboxError as e:
        print(f"jupybox: {e}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    sys.exit(code)
