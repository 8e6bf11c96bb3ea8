"""Typed instructions and build stages, from parser nodes (BuildKit's ``instructions/parse.go``).

Each instruction keeps its arguments as written (variables are expanded later by the builder, with
the environment of the step) and validates what can be validated without building: argument
counts, flags, JSON forms, HEALTHCHECK options, ONBUILD triggers, stage names.
"""

from __future__ import annotations

import re

from ..errors import BuildError
from .heredocs import HeredocError, parse_heredoc
from .mounts import MountError, check_from
from .nodes import Dockerfile, Heredoc, Node
from .suggest import with_hint

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_\.]*$")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
MIN_HEALTH_DURATION_NS = 1_000_000  # 1ms, docker's container.MinimumDuration


def _err(node: Node, message: str) -> BuildError:
    return node.error(message)


class Flags:
    """``--name=value`` / ``--name`` flags of one instruction (BuildKit's BFlags: its messages,
    a repeatable ``lists`` flag, booleans as ``--link``, ``--link=true`` or ``--link=false``)."""

    def __init__(self, node: Node, strings=(), bools=(), lists=()):
        self.values: dict[str, str | bool | list[str]] = {}
        known = tuple(strings) + tuple(bools) + tuple(lists)
        for raw in node.flags:
            if raw == "--":
                break
            if not raw.startswith("--"):
                raise _err(node, f"arg should start with -- : {raw}")
            flag, eq, value = raw.partition("=")
            name = flag[2:]
            if name not in known:
                raise _err(node, with_hint(f"unknown flag: {flag}", name, known))
            if name in self.values and name not in lists:
                raise _err(node, f"duplicate flag specified: {flag}")
            if name in bools:
                if eq and value == "":
                    raise _err(node, f"missing a value on flag: {flag}")
                if value.lower() not in ("true", "false", ""):
                    raise _err(node, f"expecting boolean value for flag {flag}, not: {value}")
                self.values[name] = value.lower() != "false"
            elif not eq:
                raise _err(node, f"missing a value on flag: {flag}")
            elif name in lists:
                self.values.setdefault(name, []).append(value)
            else:
                self.values[name] = value

    def get(self, name: str, default=None):
        return self.values.get(name, default)


class Instruction:
    """One instruction; its fields (below, per class) are set by :func:`from_node`. Plain classes
    rather than dataclasses: a cached rebuild starts a fresh process, and class creation shows."""

    node: Node

    def __init__(self, node: Node, **fields):
        self.node = node
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} line {self.node.start}: {self.node.original[:60]}>"

    @property
    def name(self) -> str:
        return self.node.cmd.upper()

    @property
    def line(self) -> int:
        return self.node.start

    @property
    def text(self) -> str:
        """The instruction as written (one line, continuations joined)."""
        return self.node.original

    def error(self, message: str) -> BuildError:
        return self.node.error(message)


class FromInstr(Instruction):
    base: str
    stage_name: str = ""
    platform: str | None


class ShellForm(Instruction):
    """RUN, CMD, ENTRYPOINT: ``args`` is the JSON list, or ``[command line]`` in shell form."""

    args: list[str]
    json: bool
    heredocs: list[Heredoc]


class RunInstr(ShellForm):
    network: str | None
    mounts: list[str]  # the --mount values as written (expanded when the step runs: .mounts)


class CmdInstr(ShellForm):
    pass


class EntrypointInstr(ShellForm):
    pass


class ShellInstr(Instruction):
    shell: list[str]


class CopyInstr(Instruction):
    sources: list[str]
    inline: list[Heredoc]  # COPY <<EOF /file
    dest: str
    from_: str | None = None
    chown: str | None
    chmod: str | None = None
    link: bool  # COPY --link: the same layer here (layers never depend on the one below)
    is_add: bool = False
    checksum: str | None
    unpack: bool | None  # ADD --unpack: None extracts local archives only


class EnvInstr(Instruction):
    pairs: list[tuple[str, str]]


class LabelInstr(Instruction):
    pairs: list[tuple[str, str]]


class ArgInstr(Instruction):
    args: list[tuple[str, str | None]]


class ValueInstr(Instruction):
    value: str


class WorkdirInstr(ValueInstr):
    pass


class UserInstr(ValueInstr):
    pass


class StopSignalInstr(ValueInstr):
    pass


class MaintainerInstr(ValueInstr):
    pass


class ExposeInstr(Instruction):
    ports: list[str]


class VolumeInstr(Instruction):
    paths: list[str]


class HealthcheckInstr(Instruction):
    health: dict


class OnbuildInstr(Instruction):
    expression: str


class Stage:
    def __init__(self, index: int, name: str, base: str, platform: str | None, from_instr: FromInstr):
        self.index = index
        self.name = name  # lower case, "" when unnamed
        self.base = base  # as written (expanded with the global ARGs at build time)
        self.platform = platform
        self.from_instr = from_instr
        self.instructions: list[Instruction] = []

    @property
    def display(self) -> str:
        return self.name or str(self.index)


class ParsedFile:
    def __init__(self, meta_args: list[ArgInstr], stages: list[Stage], escape: str, filename: str):
        self.meta_args = meta_args
        self.stages = stages
        self.escape = escape
        self.filename = filename


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration (``1m30s``, ``500ms``) → nanoseconds."""
    s = text.strip()
    if s in ("0", ""):
        return 0
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return int(total)


def _health_interval(node: Node, flags: Flags, name: str) -> int:
    v = flags.get(name)
    if not v:
        return 0
    try:
        d = parse_duration(v)
    except ValueError as e:
        raise _err(node, str(e)) from None
    if d < MIN_HEALTH_DURATION_NS:
        raise _err(node, f"Interval {name!r} cannot be less than 1ms")
    return d


def _heredoc(word: str) -> Heredoc | None:
    try:
        return parse_heredoc(word)
    except HeredocError:
        return None  # BuildKit's MustParseHeredoc


def _shell_form(cls, node: Node, **extra):
    return cls(node=node, args=list(node.args), json=node.json, heredocs=list(node.heredocs), **extra)


def from_node(node: Node) -> Instruction:
    cmd = node.cmd
    a = node.args
    if cmd == "from":
        flags = Flags(node, strings=("platform",))
        if len(a) == 3 and a[1].lower() == "as":
            name = a[2].lower()
            if not _STAGE_NAME.match(name):
                raise _err(node, f"invalid name for build stage: {a[2]!r}, name can't start with a number "
                                 f"or contain symbols")
        elif len(a) != 1:
            raise _err(node, "FROM requires either one or three arguments")
        else:
            name = ""
        return FromInstr(node=node, base=a[0], stage_name=name, platform=flags.get("platform"))
    if cmd == "run":
        flags = Flags(node, strings=("network", "security", "device"), lists=("mount",))
        if flags.get("security") is not None:
            raise _err(node, "RUN --security is not supported by jupybox build")
        if flags.get("device") is not None:
            raise _err(node, "RUN --device is not supported by jupybox build")
        net = flags.get("network")
        if net is not None and net not in ("none", "host", "default"):
            raise _err(node, f'invalid network mode "{net}"')
        mounts = list(flags.get("mount") or [])
        for m in mounts:
            try:
                check_from(m)
            except MountError as e:
                raise _err(node, str(e)) from None
        if not a:
            raise _err(node, "RUN requires at least one argument")
        return _shell_form(RunInstr, node, network=net, mounts=mounts)
    if cmd in ("cmd", "entrypoint"):
        Flags(node)
        cls = CmdInstr if cmd == "cmd" else EntrypointInstr
        return _shell_form(cls, node)
    if cmd == "shell":
        Flags(node)
        if not a:
            raise _err(node, "SHELL requires at least one argument")
        if not node.json:
            raise _err(node, f"SHELL requires the arguments to be in JSON form: {node.original}")
        return ShellInstr(node=node, shell=list(a))
    if cmd in ("copy", "add"):
        is_add = cmd == "add"
        if is_add:
            flags = Flags(node, strings=("chown", "chmod", "checksum"), bools=("link", "keep-git-dir", "unpack"),
                          lists=("exclude",))
        else:
            flags = Flags(node, strings=("chown", "chmod", "from"), bools=("link", "parents"), lists=("exclude",))
        for unsupported in ("exclude", "parents"):
            if flags.get(unsupported) is not None:
                raise _err(node, f"{cmd.upper()} --{unsupported} is not supported by jupybox build")
        if len(a) < 2:
            raise _err(node, f"{cmd.upper()} requires at least two arguments, but only one was provided. "
                             f"Destination could not be determined")
        dest = a[-1]
        if not node.json and _heredoc(dest) is not None:
            raise _err(node, f"{cmd.upper()} cannot accept a heredoc as a destination")
        docs = {h.name: h for h in node.heredocs}
        sources, inline = [], []
        for src in a[:-1]:
            h = _heredoc(src) if not node.json else None
            if h is not None and h.name in docs:
                inline.append(docs[h.name])
            else:
                sources.append(src)
        chmod = flags.get("chmod")
        return CopyInstr(node=node, sources=sources, inline=inline, dest=dest, from_=flags.get("from"),
                         chown=flags.get("chown"), chmod=chmod, link=bool(flags.get("link")), is_add=is_add,
                         checksum=flags.get("checksum"), unpack=flags.get("unpack"))
    if cmd in ("env", "label"):
        Flags(node)
        pairs = list(node.kv or [])
        if not pairs:
            raise _err(node, f"{cmd.upper()} requires at least one argument")
        for k, _ in pairs:
            if not k:
                raise _err(node, f"{cmd.upper()} names can not be blank")
        return (EnvInstr if cmd == "env" else LabelInstr)(node=node, pairs=pairs)
    if cmd == "arg":
        Flags(node)
        if not a:
            raise _err(node, "ARG requires at least one argument")
        args = []
        for w in a:
            if "=" in w:
                k, _, v = w.partition("=")
                if not k:
                    raise _err(node, "ARG names can not be blank")
                args.append((k, v))
            else:
                args.append((w, None))
        return ArgInstr(node=node, args=args)
    if cmd in ("workdir", "user", "stopsignal", "maintainer"):
        Flags(node)
        if len(a) != 1:
            raise _err(node, f"{cmd.upper()} requires exactly one argument")
        cls = {"workdir": WorkdirInstr, "user": UserInstr, "stopsignal": StopSignalInstr,
               "maintainer": MaintainerInstr}[cmd]
        return cls(node=node, value=a[0])
    if cmd == "expose":
        Flags(node)
        if not a:
            raise _err(node, "EXPOSE requires at least one argument")
        return ExposeInstr(node=node, ports=list(a))
    if cmd == "volume":
        Flags(node)
        if not a:
            raise _err(node, "VOLUME requires at least one argument")
        paths = []
        for v in a:
            v = v.strip()
            if not v:
                raise _err(node, "VOLUME specified can not be an empty string")
            paths.append(v)
        return VolumeInstr(node=node, paths=paths)
    if cmd == "healthcheck":
        if not a:
            raise _err(node, "HEALTHCHECK requires at least one argument")
        typ = a[0].upper()
        rest = a[1:]
        if typ == "NONE":
            if rest:
                raise _err(node, "HEALTHCHECK NONE takes no arguments")
            Flags(node)
            return HealthcheckInstr(node=node, health={"Test": ["NONE"]})
        flags = Flags(node, strings=("interval", "timeout", "start-period", "start-interval", "retries"))
        if typ != "CMD":
            raise _err(node, f"Unknown type {typ!r} in HEALTHCHECK (try CMD)")
        if not rest:
            raise _err(node, "Missing command after HEALTHCHECK CMD")
        test = (["CMD"] + rest) if node.json else ["CMD-SHELL"] + rest
        health: dict = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            v = _health_interval(node, flags, flag)
            if v:
                health[key] = v
        if flags.get("retries"):
            try:
                retries = int(flags.get("retries"))
            except ValueError:
                raise _err(node, f"strconv.ParseInt: parsing {flags.get('retries')!r}: invalid syntax") from None
            if retries < 1:
                raise _err(node, f"--retries must be at least 1 (not {retries})")
            health["Retries"] = retries
        return HealthcheckInstr(node=node, health=health)
    if cmd == "onbuild":
        Flags(node)
        if node.sub is None:
            raise _err(node, "ONBUILD requires at least one argument")
        trigger = node.sub.keyword.upper()
        if trigger == "ONBUILD":
            raise _err(node, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _err(node, f"{trigger} isn't allowed as an ONBUILD trigger")
        sub = Node(**{**node.sub.__dict__, "start": node.start, "end": node.end, "heredocs": node.heredocs})
        from_node(sub)  # validate the trigger now: a broken trigger is this build's error
        expr = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
        for h in node.heredocs:
            expr += "\n" + h.content + h.name
        return OnbuildInstr(node=node, expression=expr)
    raise _err(node, with_hint(f"unknown instruction: {node.keyword}", node.keyword,
                               [i.lower() for i in INSTRUCTIONS], case_sensitive=False))


def parse_stages(df: Dockerfile) -> ParsedFile:
    meta: list[ArgInstr] = []
    stages: list[Stage] = []
    for node in df.nodes:
        instr = from_node(node)
        if isinstance(instr, FromInstr):
            stages.append(Stage(index=len(stages), name=instr.stage_name, base=instr.base,
                                platform=instr.platform, from_instr=instr))
            continue
        if not stages:
            if isinstance(instr, ArgInstr):
                meta.append(instr)
                continue
            raise instr.error(f"no build stage in current context: {instr.name} before the first FROM "
                              f"(only ARG may come first)")
        stages[-1].instructions.append(instr)
    names: dict[str, int] = {}
    for s in stages:
        if s.name:
            if s.name in names:
                raise s.from_instr.error(f"duplicate stage name {s.name!r}")
            names[s.name] = s.index
    return ParsedFile(meta_args=meta, stages=stages, escape=df.escape, filename=df.filename)
