"""``%%dockerfile``: the cell is a Dockerfile, built as ``jupybox build`` would, its steps shown
as they run; then ``%%container NAME`` uses the image."""

from __future__ import annotations

import os
import shlex
import sys

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, magics_class

from .. import errors
from .cellstatus import one_line
from .magicargs import parse


def dockerfile_parser():
    """``%%dockerfile``'s parser: ``jupybox build``'s options about the image, the cell as the Dockerfile."""
    from ..cli.build import add_build_options
    from ..cli.parser import Parser

    p = Parser(prog="%%dockerfile", add_help=False, usage="%%%%dockerfile [options] NAME[:TAG]")
    add_build_options(p)
    p.add_argument("--context", default=None, help="build context (default: the notebook's directory)")
    p.add_argument("--help", action="help", help="show this help")
    p.add_argument("name", metavar="NAME[:TAG]", help="the image's name (more with -t)")
    return p


def _print_step(ev) -> None:
    """A build's ``on_step(StepEvent)``: docker's classic build log, live in the cell."""
    kind = getattr(ev, "kind", "")
    if kind == "start":
        print(f"Step {ev.step}/{ev.total} : {ev.instruction}", flush=True)
    elif kind == "output":
        print(f" {ev.line}", flush=True)
    elif kind == "end":
        if ev.cached:
            print(" ---> Using cache")
        print(f" ---> {(ev.image_id or '').split(':')[-1][:12]}" + (f" ({ev.duration:.1f} s)" if ev.duration else ""),
              flush=True)
    elif kind in ("info", "error"):
        print(ev.message, file=sys.stderr if kind == "error" else sys.stdout, flush=True)


@magics_class
class DockerfileMagics(Magics):
    """``%%dockerfile``; its store is the ``%%container`` magics' (``JupyboxMagics.root``)."""

    @property
    def root(self):
        return getattr(getattr(self.shell, "_jupybox_magics", None), "root", None)

    @cell_magic
    def dockerfile(self, line, cell):
        """Build the cell as a Dockerfile: %%dockerfile [jupybox build's options] [--context DIR] NAME[:TAG]

        The context is the notebook's directory by default; the steps are shown as they run;
        then `%%container NAME` uses the image. Needs the build engine's ``jupybox.dockerfile.build()``.
        """
        __tracebackhide__ = True  # noqa: F841
        try:
            args = parse(dockerfile_parser(), shlex.split(line))
        except ValueError as e:
            raise IPythonUsageError(f"%%dockerfile: {e}") from None
        if args is None:
            return None
        try:
            from ..dockerfile import build  # type: ignore[attr-defined]
        except ImportError:
            raise one_line(errors.JupyboxError(
                "%%dockerfile needs the build engine's jupybox.dockerfile.build(), which this version does not have"
            )) from None
        from ..cli.build import build_options

        try:
            options = build_options(args)
            if any(o.dest == "-" for o in options["outputs"]):
                raise IPythonUsageError("%%dockerfile: -o dest=- needs a stdout to write to: give a file")
            options["tags"].insert(0, args.name)
            image = build(dockerfile=cell, context=args.context or os.getcwd(), root=self.root, on_step=_print_step,
                          **options)
        except errors.UsageError as e:
            raise IPythonUsageError(str(e)) from None
        except errors.JupyboxError as e:
            raise one_line(e) from None
        return image


def register(ip) -> None:
    ip.register_magics(DockerfileMagics(shell=ip))


def unregister(ip) -> None:
    ip.magics_manager.magics["cell"].pop("dockerfile", None)
