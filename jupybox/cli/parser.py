"""One argparse parser for the CLI and the ``%container`` magic.

Errors raise :class:`jupybox.errors.UsageError` instead of exiting, so the magic turns them into
IPython's UsageError (the kernel stays alive) and the CLI into docker's exit code 125.
Verb modules register themselves with ``add_parser(subparsers)`` and a ``run(args, ctx)``.
"""

from __future__ import annotations

import argparse
import importlib

from ..errors import UsageError

# verb -> module (in jupybox.cli) that defines it
VERBS = {
    "run": "run", "create": "run", "start": "run", "exec": "run",
    "ps": "containers", "logs": "containers", "inspect": "containers", "stop": "containers",
    "kill": "containers", "rm": "containers", "stats": "containers", "wait": "containers",
    "prune": "containers",
    "images": "images", "import": "images", "rmi": "images", "tag": "images", "history": "images",
    "image": "images", "save": "images", "load": "images", "pull": "images", "push": "images",
    "login": "images", "logout": "images", "fsck": "images",
    "volume": "volumes",
    "kernel": "kernel",
    "info": "info", "version": "info",
    "build": "build", "builder": "build",
    "network": "network", "port": "network",
    "system": "system",
    "compose": "compose",
    "kube": "kube",
    "commit": "env", "notebook": "env", "lock": "env",
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # "run: unrecognized arguments: --bogus"; the CLI adds "jupybox: " in front
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(f"{where}{message}")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            raise UsageError(message.strip())
        raise _HelpShown(status)


class _HelpShown(Exception):
    def __init__(self, status: int):
        self.status = status


class _Ignored:
    """Stands in for the parsers of verbs not being parsed: argparse spends ~0.1 ms per option
    (gettext look-ups included), and the whole CLI has hundreds of them."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self


class _OnlyVerb:
    def __init__(self, sub, verb: str):
        self._sub = sub
        self._verb = verb

    def add_parser(self, name, **kwargs):
        return self._sub.add_parser(name, **kwargs) if name == self._verb else _Ignored()


def verb_of(argv: list[str]) -> str | None:
    """The verb of a command line (the first word after the global options), if known."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--root" else 1
    return argv[i] if i < len(argv) and argv[i] in VERBS else None


def build(prog: str = "jupybox", verb: str | None = None) -> Parser:
    """The parser; with ``verb``, only that verb's sub-parser is made (all of them for help)."""
    parser = Parser(prog=prog, description="Real Linux containers for Jupyter, with a docker-like CLI.")
    parser.add_argument("--root", help="state directory (default $JUPYBOX_ROOT or /var/lib/jupybox)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    if verb in VERBS:
        importlib.import_module(f"jupybox.cli.{VERBS[verb]}").add_parsers(_OnlyVerb(sub, verb))
    else:
        for module in dict.fromkeys(VERBS.values()):
            importlib.import_module(f"jupybox.cli.{module}").add_parsers(sub)
    parser.verbs = sub.choices
    return parser


def verb_summary(parser: Parser | None = None) -> str:
    """Every verb in the parser's order, with its sub-verbs in parentheses and aliases left out:
    ``run create ... image (ls|rm|prune|inspect) ...``. The README's verb list is this text
    (tests/test_readme.py compares)."""
    parser = parser or build()
    words = []
    for name, sub in _unique_choices(parser):
        inner = [n for n, _ in _unique_choices(sub)]
        words.append(f"{name} ({'|'.join(inner)})" if inner else name)
    return " ".join(words)


def _unique_choices(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, sub-parser) of a parser's sub-commands, an alias (the same sub-parser again) once."""
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            seen: set[int] = set()
            out = []
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    out.append((name, sub))
            return out
    return []


def parse(parser: Parser, argv: list[str]) -> argparse.Namespace:
    """parse_args, with docker's rule that the words after IMAGE (or CONTAINER) are the command."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--root" else 1
    if i < len(argv) and argv[i] in ("run", "create", "exec"):
        verb = argv[i]
        head, tail = split_command(parser.verbs[verb], argv[i + 1 :], positionals=1)
        args = parser.parse_args(argv[: i + 1] + head)
        args.command = tail
        return args
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        raise _HelpShown(0)
    return args


def takes_value(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Option string -> whether it consumes the next word (for splitting `run OPTIONS IMAGE CMD...`)."""
    out = {}
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        for opt in action.option_strings:
            out[opt] = action.nargs != 0
    return out


def split_command(parser: argparse.ArgumentParser, words: list[str], positionals: int = 1) -> tuple[list[str], list[str]]:
    """Split at the end of the first ``positionals`` non-option words: the rest is the command.

    docker's rule: everything after the image belongs to the command, even words that look
    like options (``jupybox run host ls -l``).
    """
    opts = takes_value(parser)
    i = 0
    seen = 0
    while i < len(words):
        w = words[i]
        if w == "--":
            return words[:i] + words[i + 1 : i + 1 + positionals - seen], words[i + 1 + positionals - seen :]
        if w.startswith("-") and w != "-":
            # --opt=value, -m256m, -it and unknown flags (argparse names those) are one word
            i += 2 if opts.get(w) else 1
            continue
        seen += 1
        i += 1
        if seen == positionals:
            return words[:i], words[i:]
    return words, []
