"""The CLI and the magics share one parser: `%%container` takes `jupybox run`'s options,
`%%dockerfile` `jupybox build`'s and `%%compose` `jupybox compose up`'s, from the same functions
(cli.run.add_run_options, cli.build.add_build_options, cli.compose.add_project_options and
add_up_options), and what they mean is the same code's (make_spec, build_options, up_options)."""

from __future__ import annotations

import argparse

import pytest

pytest.importorskip("IPython")


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}  # noqa: SLF001


def cli_verb(verb: str) -> argparse.ArgumentParser:
    from jupybox.cli.parser import build

    return build(verb=verb).verbs[verb]


def test_the_cell_magic_takes_every_run_option():
    from jupybox.jupyter.magics import cell_parser

    # -i is docker's --interactive on the command line; in the magic it copies variables in (rpy2's -i).
    # --no-isolation: the CLI refuses to run unisolated without it; the magic does so by itself, under a banner
    missing = options(cli_verb("run")) - options(cell_parser()) - {"-i", "--no-isolation"}
    assert not missing, sorted(missing)


def test_the_dockerfile_magic_takes_every_build_option_about_the_image():
    from jupybox.cli.binder import add_binder_options
    from jupybox.jupyter.magics import dockerfile_parser

    binder = argparse.ArgumentParser(add_help=False)
    add_binder_options(binder)
    # the terminal's and the repository's options; in a cell the Dockerfile is the cell
    cli_only = {"-h", "--help", "-f", "--file", "--progress", "-q", "--quiet", "--runner"} | options(binder)
    missing = options(cli_verb("build")) - cli_only - options(dockerfile_parser())
    assert not missing, sorted(missing)


def test_the_compose_magic_takes_every_project_and_up_option():
    from jupybox.jupyter.compose_magic import _parser

    compose = cli_verb("compose")
    up = next(a for a in compose._actions if isinstance(a, argparse._SubParsersAction)).choices["up"]  # noqa: SLF001
    # the cell is the file and its directory the notebook's; the magic is `up -d`, never attached
    cli_only = {"-h", "--help", "-f", "--file", "--project-directory", "--ansi", "-d", "--detach", "-t", "--timeout"}
    missing = (options(compose) | options(up)) - cli_only - options(_parser())
    assert not missing, sorted(missing)
    args = _parser().parse_args(["--profile", "debug", "--no-start", "web"])
    assert args.profiles == ["debug"] and args.no_start and args.services == ["web"]


@pytest.mark.root
def test_a_dockerfile_cell_builds_with_the_build_options(jupybox_root, busybox_tar):
    from IPython.testing.globalipapp import get_ipython

    from jupybox.api import image  # (jupybox.image is the subpackage once jupybox.image.* is imported)
    from jupybox.testing import import_image

    import_image(jupybox_root, busybox_tar, "busybox:latest")
    ip = get_ipython()
    ip.run_line_magic("load_ext", "jupybox")
    magics = ip._jupybox_magics
    saved = magics.root
    magics.root = str(jupybox_root)  # (the shell is the process's one: put back at the end)
    try:
        res = ip.run_cell("%%dockerfile --label team=data -t extra:2 --build-arg V=7 made:1\n"
                          "FROM busybox\nARG V\nLABEL v=$V\n")
        assert res.error_in_exec is None, res.error_in_exec
        for ref in ("made:1", "extra:2"):
            labels = image(ref, root=jupybox_root).config["config"]["Labels"]
            assert labels["team"] == "data" and labels["v"] == "7", labels
        res = ip.run_cell("%%dockerfile -o type=tar,dest=- made:2\nFROM busybox\n")
        assert "needs a stdout" in str(res.error_in_exec)
    finally:
        magics.root = saved
