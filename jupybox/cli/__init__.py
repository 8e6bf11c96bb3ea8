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
    """What a verb needs: the root, the engine (reads) and the store's service (everything that
    starts or ends a container), both made on first use."""

    def __init__(self, root=None, out=None, err=None):
        self.root = root
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._engine = None
        self._service = None

    def service(self):
        """This command's connection to the store's service (started if none runs)."""
        if self._service is None:
            from ..paths import Layout
            from ..service.client import Connection

            self._service = Connection(os.path.abspath(Layout(self.root).root))
        return self._service

    def adopt_orphans(self) -> None:
        """Before reading containers: those whose service died are re-adopted by a new one."""
        from ..service import adopt_orphans

        adopt_orphans(self.engine)

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None

    @property
    def engine(self):
        if self._engine is None:
            from ..runtime.engine import Engine

            self._engine = Engine(self.root)
        return self._engine

    def print(self, *args, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        """One write per line: print() writes its parts one by one, which unbuffered (PYTHONUNBUFFERED)
        interleaves with the lines of other processes on the same pipe (`xargs -P 10 jupybox run -d`
        gave two ids on one line)."""
        self.out.write(sep.join(map(str, args)) + end)
        if flush:
            self.out.flush()


def execute(argv: list[str], ctx: Context | None = None) -> int:
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
    try:
        code = args.func(args, ctx)
        return 0 if code is None else code
    finally:
        ctx.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = execute(argv)
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
