"""Config-only instructions (ENV, LABEL, CMD, ENTRYPOINT, SHELL, USER, EXPOSE, VOLUME, STOPSIGNAL,
HEALTHCHECK, ONBUILD, MAINTAINER): what each one changes in the image config, with Docker's rules.
Shared by the builder and ``docker import/commit --change`` (:func:`jupybox.dockerfile.apply_changes`)."""

from __future__ import annotations

import re
import signal

from .expand import Lexer
from .instructions import (CmdInstr, EntrypointInstr, EnvInstr, ExposeInstr, HealthcheckInstr, Instruction,
                           LabelInstr, MaintainerInstr, OnbuildInstr, ShellInstr, StopSignalInstr, UserInstr,
                           VolumeInstr)
from .state import DEFAULT_SHELL

_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([a-zA-Z]+))?$")


def meta_effect(instr: Instruction, env: dict[str, str], lexer: Lexer, cfg: dict, cmd_set: bool = False,
                raw_labels: dict | None = None):
    """The effect of a config-only instruction (ENV, LABEL, CMD, ENTRYPOINT, SHELL, USER, EXPOSE,
    VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER) with Docker's rules: (``mutate(section)``
    applying it to an image config's ``config`` section (None for MAINTAINER), the author
    (MAINTAINER) or None, whether CMD is now set in this stage). ``env``: the variables for
    expansion; ``cfg``: the current section. Raises BuildError, or ExpandError for a bad word."""
    author = None
    mutate = None
    if isinstance(instr, EnvInstr):
        pairs = [(lexer.process_word(k, env), lexer.process_word(v, env)) for k, v in instr.pairs]

        def mutate(c):
            cur = list(c.get("Env") or [])
            for k, v in pairs:
                item = f"{k}={v}"
                for i, e in enumerate(cur):
                    if e.split("=", 1)[0] == k:
                        cur[i] = item
                        break
                else:
                    cur.append(item)
            c["Env"] = cur
    elif isinstance(instr, LabelInstr):
        if raw_labels is not None:
            pairs = list(raw_labels.items())
        else:
            pairs = [(lexer.process_word(k, env), lexer.process_word(v, env)) for k, v in instr.pairs]

        def mutate(c):
            labels = dict(c.get("Labels") or {})
            labels.update(pairs)
            c["Labels"] = labels
    elif isinstance(instr, (CmdInstr, EntrypointInstr)):
        shell = list(cfg.get("Shell") or DEFAULT_SHELL)
        argv = list(instr.args) if instr.json else (shell + [instr.args[0]] if instr.args else [])
        if isinstance(instr, CmdInstr):
            cmd_set = True

            def mutate(c):
                c["Cmd"] = argv
        else:
            value = argv if argv else None
            keep_cmd = cmd_set

            def mutate(c):
                c["Entrypoint"] = value
                if not keep_cmd:  # docker: an ENTRYPOINT resets a CMD inherited from the base
                    c["Cmd"] = None
    elif isinstance(instr, ShellInstr):
        def mutate(c):
            c["Shell"] = list(instr.shell)
    elif isinstance(instr, UserInstr):
        user = lexer.process_word(instr.value, env)

        def mutate(c):
            c["User"] = user
    elif isinstance(instr, ExposeInstr):
        ports = []
        for p in instr.ports:
            for word in lexer.process_words(p, env):
                ports.extend(_ports(instr, word))

        def mutate(c):
            exposed = dict(c.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            c["ExposedPorts"] = exposed
    elif isinstance(instr, VolumeInstr):
        vols = [lexer.process_word(v, env) for v in instr.paths]
        for v in vols:
            if not v.strip():
                raise instr.error(f"{instr.text}: VOLUME specified can not be an empty string")

        def mutate(c):
            volumes = dict(c.get("Volumes") or {})
            for v in vols:
                volumes[v] = {}
            c["Volumes"] = volumes
    elif isinstance(instr, StopSignalInstr):
        sig = lexer.process_word(instr.value, env)
        _check_signal(instr, sig)

        def mutate(c):
            c["StopSignal"] = sig
    elif isinstance(instr, HealthcheckInstr):
        health = dict(instr.health)

        def mutate(c):
            c["Healthcheck"] = health
    elif isinstance(instr, OnbuildInstr):
        def mutate(c):
            c["OnBuild"] = list(c.get("OnBuild") or []) + [instr.expression]
    elif isinstance(instr, MaintainerInstr):
        author = lexer.process_word(instr.value, env)
    else:
        raise instr.error(f"{instr.text}: {instr.name} is not a config-only instruction")
    return mutate, author, cmd_set


def _ports(instr: Instruction, word: str) -> list[str]:
    m = _PORT.match(word)
    if not m:
        raise instr.error(f"{instr.text}: invalid containerPort: {word}")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    proto = (m.group(3) or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise instr.error(f"{instr.text}: invalid proto: {proto}")
    if not (0 < lo <= 65535 and 0 < hi <= 65535) or hi < lo:
        raise instr.error(f"{instr.text}: invalid range specified for port: {word}")
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def _check_signal(instr: Instruction, sig: str) -> None:
    if sig.isdigit():
        if 0 < int(sig) < 65:
            return
    else:
        name = sig.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        if hasattr(signal.Signals, name) or re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name):
            return
    raise instr.error(f"{instr.text}: invalid signal: {sig}")

