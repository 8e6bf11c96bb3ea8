"""The builder: stages, steps, the cache, and the final image.

One :class:`Builder` per build. Stages are built on demand, starting from the target (the last
stage, or ``--target``): a stage is built only when the target needs it, through ``FROM <stage>``
or ``COPY --from=<stage>``; the others are skipped. Each instruction is one *step* that turns an
image state (config + layers) into the next one:

* the step's cache key (:mod:`.cache`) is looked up first; a hit gives the stored state (same
  image id as before), a miss executes the step and stores the result;
* RUN runs a real container (:mod:`.runner`) on the current state (registered in the store
  for the time of the build, as an untagged image) and takes its layer from the overlay upper
  directory (:func:`.layers.commit_upper`); COPY/ADD write their layer directly
  (:mod:`.copier`); WORKDIR adds a layer only when it creates the directory; all the other
  instructions change the config and add an ``empty_layer`` history entry;
* ONBUILD triggers of a base image run right after its FROM (and are cleared from the child).

Nothing is registered under a name until the last step succeeds; the intermediate images
registered for RUN steps are unregistered at the end (their blobs stay, as build cache), also
after an error or Ctrl-C, and every container is removed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import re
import signal
import stat
import time
from typing import Callable

from .. import errors
from ..errors import BuildError
from .cache import BuildCache, make_key
from .context import ContextFS, EmptyFS, ImageFS, normalize
from .expand import ExpandError, Lexer
from .instructions import (ArgInstr, CmdInstr, CopyInstr, EntrypointInstr, EnvInstr, ExposeInstr,
                           HealthcheckInstr, Instruction, LabelInstr, MaintainerInstr, OnbuildInstr,
                           ParsedFile, RunInstr, ShellInstr, Stage, StopSignalInstr, UserInstr, VolumeInstr,
                           WorkdirInstr, from_node)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([a-zA-Z]+))?$")


def _arch() -> str:
    m = os.uname().machine.lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def platform_args() -> dict[str, str]:
    arch = _arch()
    plat = f"linux/{arch}"
    out = {}
    for prefix in ("TARGET", "BUILD"):
        out[prefix + "PLATFORM"] = plat
        out[prefix + "OS"] = "linux"
        out[prefix + "ARCH"] = arch
        out[prefix + "VARIANT"] = ""
    return out


def canonical_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def now_rfc3339() -> str:
    from ..image.model import now_rfc3339 as now

    return now()


class StepEvent:
    """What ``on_step`` receives. ``kind``: ``start`` (a step begins), ``output`` (a line of a RUN),
    ``end`` (the step is done: ``cached``, ``duration``, ``image_id``), ``error`` (it failed:
    ``message``, the RUN's ``output`` lines and ``exit_code``), ``info`` (pulling, warnings, final
    messages). ``step``/``total`` number the steps of one stage (FROM is 1)."""

    __slots__ = ("kind", "stage", "step", "total", "instruction", "cached", "duration", "line", "image_id",
                 "message", "output", "exit_code")

    def __init__(self, kind: str, stage: str = "", step: int = 0, total: int = 0, instruction: str = "",
                 cached: bool = False, duration: float = 0.0, line: str = "", image_id: str | None = None,
                 message: str = "", output: list[str] | None = None, exit_code: int | None = None):
        self.kind = kind
        self.stage = stage
        self.step = step
        self.total = total
        self.instruction = instruction
        self.cached = cached
        self.duration = duration
        self.line = line
        self.image_id = image_id
        self.message = message
        self.output = output if output is not None else []
        self.exit_code = exit_code

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__ if getattr(self, k) not in ("", None, [], 0, False))
        return f"StepEvent({fields})"


class State:
    """An image being built: its config and its layer descriptors (bottom → top)."""

    __slots__ = ("config", "layers", "_id")

    def __init__(self, config: dict, layers: list[dict]):
        self.config = config
        self.layers = layers
        self._id = None

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = "sha256:" + hashlib.sha256(canonical_json(self.config)).hexdigest()
        return self._id

    @property
    def cfg(self) -> dict:
        return self.config.get("config") or {}

    def env(self) -> dict[str, str]:
        out = {}
        for item in self.cfg.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def to_cache(self) -> dict:
        return {"config": self.config, "layers": self.layers}

    def manifest(self) -> tuple[bytes, bytes]:
        from ..image import mediatypes as mt

        cbytes = canonical_json(self.config)
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": self.id, "size": len(cbytes)},
                    "layers": self.layers}
        return cbytes, canonical_json(manifest)


class StageCtx:
    def __init__(self, stage: Stage, state: "State | None", label: str):
        self.stage = stage
        self.state = state
        self.args: dict[str, str | None] = {}  # ARGs in scope (None: declared, unset)
        self.cmd_set = False
        self.total = 0
        self.step = 0
        self.label = label


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


class Builder:
    def __init__(self, store, root, context: ContextFS, parsed: ParsedFile, *, build_args: dict[str, str],
                 target: str | None, no_cache: bool, labels: dict[str, str], network: str,
                 runner_kind: str | None, on_step: Callable[[StepEvent], None] | None, pull: bool = True):
        self.store = store
        self.root = os.fspath(root)
        self.context = context
        self.parsed = parsed
        self.filename = parsed.filename
        self.build_args = dict(build_args)
        self.target = target
        self.no_cache = no_cache
        self.labels = dict(labels)
        self.network = network
        self.runner_kind = runner_kind
        self.on_step = on_step
        self.pull = pull
        self.lexer = Lexer(parsed.escape)
        self.cache = BuildCache(self.root)
        self.hashes = self.cache.files(context.root)
        self.runner = None
        self.registered: list[str] = []  # image ids registered here (untagged), unregistered at the end
        self.done: dict[int, StageCtx] = {}
        self.building: set[int] = set()
        self.consumed_args: set[str] = set()
        self.global_args = self._global_args()
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ events
    def emit(self, **kw) -> None:
        if self.on_step is not None:
            self.on_step(StepEvent(**kw))

    # ------------------------------------------------------------------ args
    def _global_args(self) -> dict[str, str | None]:
        """ARGs before the first FROM (usable in FROM lines, and imported by ``ARG NAME`` in a stage)."""
        env: dict[str, str | None] = dict(platform_args())
        for instr in self.parsed.meta_args:
            for k, default in instr.args:
                k = self._expand(instr, k, self._vars(env))
                value = self._expand(instr, default, self._vars(env)) if default is not None else None
                if k in self.build_args:
                    value = self.build_args[k]
                    self.consumed_args.add(k)
                env[k] = value
        return env

    @staticmethod
    def _vars(args: dict[str, str | None], env: dict[str, str] | None = None) -> dict[str, str]:
        out = {k: v for k, v in args.items() if v is not None}
        if env:
            out.update(env)
        return out

    def _expand(self, instr: Instruction, word: str, env: dict[str, str]) -> str:
        try:
            return self.lexer.process_word(word, env)
        except ExpandError as e:
            raise instr.error(f"{instr.text}: {e}") from None

    def _expand_words(self, instr: Instruction, word: str, env: dict[str, str]) -> list[str]:
        try:
            return self.lexer.process_words(word, env)
        except ExpandError as e:
            raise instr.error(f"{instr.text}: {e}") from None

    # ------------------------------------------------------------------ stages
    def stage_index(self, name: str) -> int | None:
        low = name.lower()
        for s in self.parsed.stages:
            if s.name and s.name == low:
                return s.index
        return None

    def target_stage(self) -> int:
        if not self.parsed.stages:
            raise BuildError(f"{self.filename}:1: no FROM instruction: nothing to build")
        if self.target:
            i = self.stage_index(self.target)
            if i is None:
                raise BuildError(f"{self.filename}:1: target stage {self.target!r} could not be found")
            return i
        return len(self.parsed.stages) - 1

    def run(self) -> State:
        t = self.target_stage()
        ctx = self.build_stage(t, final=True)
        unused = sorted(k for k in self.build_args if k not in self.consumed_args and k not in PROXY_ARGS)
        if unused:
            self.warnings.append(f"one or more build-args {unused} were not consumed")
            self.emit(kind="info", message=f"[Warning] One or more build-args {unused} were not consumed")
        return ctx.state

    def build_stage(self, index: int, final: bool = False) -> StageCtx:
        got = self.done.get(index)
        if got is not None:
            return got
        stage = self.parsed.stages[index]
        if index in self.building:
            raise stage.from_instr.error(f"circular dependency on stage {stage.display!r}")
        self.building.add(index)
        gvars = self._vars(self.global_args)
        base = self._expand(stage.from_instr, stage.base, gvars)
        for dep in self._static_deps(stage, base):
            if dep < index and dep not in self.done:
                self.build_stage(dep)
        if stage.platform:
            want = self._expand(stage.from_instr, stage.platform, gvars)
            if want not in (f"linux/{_arch()}", _arch()):
                raise stage.from_instr.error(f"{stage.from_instr.text}: only the host platform (linux/{_arch()}) "
                                             f"can be built, not {want}")
        label = stage.name or f"stage-{index}"
        ctx = StageCtx(stage=stage, state=None, label=label)  # type: ignore[arg-type]
        ctx.total = 1 + len(stage.instructions) + (1 if final and self.labels else 0)
        ctx.step = 1
        t0 = time.monotonic()
        self.emit(kind="start", stage=label, step=1, total=ctx.total, instruction=f"FROM {base}")
        src = self.stage_index(base)
        if src is not None and src < index:
            ctx.state = self._copy_state(self.build_stage(src).state)
        elif base.lower() == "scratch":
            ctx.state = State({"architecture": _arch(), "os": "linux", "config": {},
                               "rootfs": {"type": "layers", "diff_ids": []}, "history": []}, [])
        else:
            if src is not None:
                raise stage.from_instr.error(f"{stage.from_instr.text}: stage {base!r} is not defined before "
                                             f"this one")
            img = self.image(stage.from_instr, base)
            if img.is_host:
                raise stage.from_instr.error(f"{stage.from_instr.text}: the built-in host image cannot be a base image")
            ctx.state = self._state_of(img)
        cfg = ctx.state.config.setdefault("config", {})
        env = list(cfg.get("Env") or [])
        if not any(e.split("=", 1)[0] == "PATH" for e in env):
            cfg["Env"] = env + [f"PATH={DEFAULT_PATH}"]
        ctx.state._id = None
        triggers = list(cfg.get("OnBuild") or [])
        self.emit(kind="end", stage=label, step=1, total=ctx.total, instruction=f"FROM {base}",
                  cached=False, duration=time.monotonic() - t0, image_id=ctx.state.id)
        if triggers:
            cfg["OnBuild"] = None
            ctx.state._id = None
            ctx.total += len(triggers)
            for expr in triggers:
                instr = self._trigger(stage, expr)
                self.step(ctx, instr, display=f"ONBUILD {expr.splitlines()[0]}")
        for instr in stage.instructions:
            self.step(ctx, instr)
        if final and self.labels:
            text = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in self.labels.items())
            from .parser import parse

            node = parse(text, self.filename).nodes[0]
            node.start = stage.from_instr.line
            self.step(ctx, from_node(node), raw_labels=self.labels)
        self.building.discard(index)
        self.done[index] = ctx
        return ctx

    def _static_deps(self, stage: Stage, base: str) -> list[int]:
        """Stages this one needs (FROM, COPY --from), found without building it, so that they are
        built (and displayed) first; anything missed here is still built when reached."""
        deps = []
        i = self.stage_index(base)
        if i is not None:
            deps.append(i)
        env: dict[str, str] = self._vars(self.global_args)
        for instr in stage.instructions:
            try:
                if isinstance(instr, ArgInstr):
                    for k, default in instr.args:
                        if k in self.build_args:
                            env[k] = self.build_args[k]
                        elif default is not None:
                            env[k] = self.lexer.process_word(default, env)
                elif isinstance(instr, EnvInstr):
                    for k, v in instr.pairs:
                        env[self.lexer.process_word(k, env)] = self.lexer.process_word(v, env)
                elif isinstance(instr, CopyInstr) and instr.from_:
                    frm = self.lexer.process_word(instr.from_, env)
                    j = self.stage_index(frm)
                    if j is None and frm.isdigit() and int(frm) < len(self.parsed.stages):
                        j = int(frm)
                    if j is not None and j not in deps:
                        deps.append(j)
            except ExpandError:
                continue
        return deps

    def _trigger(self, stage: Stage, expr: str) -> Instruction:
        from .parser import parse

        try:
            df = parse(expr, self.filename)
        except BuildError as e:
            raise stage.from_instr.error(f"ONBUILD trigger {expr!r}: {str(e).split(': ', 1)[-1]}") from None
        node = df.nodes[0]
        node.start = node.end = stage.from_instr.line
        return from_node(node)

    @staticmethod
    def _copy_state(s: State) -> State:
        return State(copy.deepcopy(s.config), copy.deepcopy(s.layers))

    def _state_of(self, img) -> State:
        from ..image import mediatypes as mt

        cfg = copy.deepcopy(img.config)
        cfg.setdefault("config", {})
        cfg.setdefault("history", [])
        cfg["rootfs"] = {"type": "layers", "diff_ids": list(img.diff_ids)}
        cfg.setdefault("architecture", _arch())
        cfg.setdefault("os", "linux")
        layers = []
        for d in img.layers:
            media = d.get("mediaType")
            if media not in mt.LAYER_BY_COMPRESSION.values():
                from ..image.layer import detect_compression

                kind = "none"
                try:
                    with open(self.store.blob_path(d["digest"]), "rb") as f:
                        kind = detect_compression(f.read(8))
                except OSError:
                    kind = {"application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip"}.get(media, "none")
                media = mt.LAYER_BY_COMPRESSION.get(kind, mt.OCI_LAYER)
            layers.append({"mediaType": media, "digest": d["digest"], "size": d["size"]})
        return State(cfg, layers)

    def image(self, instr: Instruction, ref: str):
        """A local image, pulled when missing."""
        from ..errors import ImageNotFound, JupyboxError

        try:
            return self.store.resolve(ref)
        except ImageNotFound:
            if not self.pull:
                raise instr.error(f"{instr.text}: image {ref!r} not found locally (and pulling is off)") from None
        except JupyboxError as e:
            raise instr.error(f"{instr.text}: {e}") from None
        self.emit(kind="info", message=f"pulling {ref}")
        try:
            from ..registry import pull

            return pull(self.store, ref)
        except JupyboxError as e:
            raise instr.error(f"{instr.text}: pulling {ref}: {e}") from None
        except OSError as e:
            raise instr.error(f"{instr.text}: pulling {ref}: {e}") from None

    # ------------------------------------------------------------------ state helpers
    def image_fs(self, state: State) -> ImageFS:
        from ..image.model import Image

        if not state.layers:
            return ImageFS([])
        img = Image(id=state.id, config=state.config, manifest={"layers": state.layers}, store=self.store)
        return ImageFS(self.store.layer_dirs(img))

    def materialize(self, state: State) -> str:
        """Write the state's config and manifest blobs; returns the manifest digest."""
        cbytes, mbytes = state.manifest()
        if not self.store.has_blob(state.id):
            self.store.write_blob(cbytes)
        return self.store.write_blob(mbytes)

    def register(self, state: State) -> None:
        """Make the state an (untagged) image in the store, for the runtime to start a container."""
        mdigest = self.materialize(state)
        if not self.store.exists(state.id):
            self.store.add_image(mdigest)
            self.registered.append(state.id)

    def commit(self, ctx: StageCtx, created_by: str, layer=None, mutate=None, author: str | None = None) -> State:
        cfg = copy.deepcopy(ctx.state.config)
        section = cfg.setdefault("config", {})
        if mutate is not None:
            mutate(section)
        if author is not None:
            cfg["author"] = author
        now = now_rfc3339()
        cfg["created"] = now
        hist = {"created": now, "created_by": created_by}
        layers = list(ctx.state.layers)
        if layer is None:
            hist["empty_layer"] = True
        else:
            cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            cfg["rootfs"] = {"type": "layers", "diff_ids": list(cfg["rootfs"].get("diff_ids") or []) + [layer.diff_id]}
            layers.append(layer.desc)
        cfg.setdefault("history", [])
        cfg["history"] = list(cfg["history"]) + [hist]
        return State(cfg, layers)

    def cached(self, key: str) -> State | None:
        if self.no_cache:
            return None
        v = self.cache.get(key)
        if v is None:
            return None
        for d in v["layers"]:
            if not self.store.has_blob(d.get("digest", "")):
                return None
        return State(v["config"], v["layers"])

    def remember(self, key: str, state: State) -> None:
        self.cache.put(key, state.to_cache())

    # ------------------------------------------------------------------ steps
    def step(self, ctx: StageCtx, instr: Instruction, display: str | None = None, raw_labels=None) -> None:
        ctx.step += 1
        text = display or instr.text
        base = dict(stage=ctx.label, step=ctx.step, total=ctx.total, instruction=text)
        self.emit(kind="start", **base)
        t0 = time.monotonic()
        self._output: list[str] = []
        try:
            state, cached = self.dispatch(ctx, instr, base, raw_labels)
        except BuildError as e:
            self.emit(kind="error", message=str(e), output=list(self._output),
                      exit_code=getattr(e, "step_exit_code", None), **base)
            raise
        except (errors.JupyboxError, OSError, ValueError) as e:
            msg = str(e) if not isinstance(e, OSError) or not e.strerror else \
                (f"{e.strerror}: {e.filename}" if e.filename else e.strerror)
            err = instr.error(f"{text}: {msg}")
            self.emit(kind="error", message=str(err), output=list(self._output), **base)
            raise err from None
        ctx.state = state
        self.emit(kind="end", cached=cached, duration=time.monotonic() - t0, image_id=state.id, **base)

    def dispatch(self, ctx: StageCtx, instr: Instruction, base: dict, raw_labels=None) -> tuple[State, bool]:
        if isinstance(instr, RunInstr):
            return self.do_run(ctx, instr, base)
        if isinstance(instr, CopyInstr):
            return self.do_copy(ctx, instr)
        if isinstance(instr, WorkdirInstr):
            return self.do_workdir(ctx, instr)
        if isinstance(instr, ArgInstr):
            return self.do_arg(ctx, instr)
        return self.do_meta(ctx, instr, raw_labels)

    def _step_env(self, ctx: StageCtx) -> dict[str, str]:
        """Variables for expansion: the stage's ARGs, overridden by the image's ENV."""
        return self._vars(ctx.args, ctx.state.env())

    def _meta_created_by(self, instr: Instruction, text: str | None = None) -> str:
        return "/bin/sh -c #(nop) " + (text or instr.text)

    def _finish_meta(self, ctx: StageCtx, instr: Instruction, mutate, created_by: str, author=None):
        new = self.commit(ctx, created_by, mutate=mutate, author=author)
        # the key is the parent and the resulting config section: the instruction's effect
        key = make_key([ctx.state.id, instr.name, new.config.get("config"), new.config.get("author"), created_by])
        hit = self.cached(key)
        if hit is not None:
            return hit, True
        self.remember(key, new)
        return new, False

    # ---- ARG
    def do_arg(self, ctx: StageCtx, instr: ArgInstr):
        env = self._step_env(ctx)
        shown = []
        for k, default in instr.args:
            name = self._expand(instr, k, env)
            value = self._expand(instr, default, env) if default is not None else None
            if name in self.build_args:
                value = self.build_args[name]
                self.consumed_args.add(name)
            elif value is None and name in self.global_args:
                value = self.global_args[name]
            ctx.args[name] = value
            env = self._step_env(ctx)
            shown.append(name if default is None else f"{name}={default}")
        return self._finish_meta(ctx, instr, None, self._meta_created_by(instr, "ARG " + " ".join(shown)))

    # ---- metadata-only instructions
    def do_meta(self, ctx: StageCtx, instr: Instruction, raw_labels=None):
        try:
            mutate, author, ctx.cmd_set = meta_effect(instr, self._step_env(ctx), self.lexer, ctx.state.cfg,
                                                      ctx.cmd_set, raw_labels)
        except ExpandError as e:
            raise instr.error(f"{instr.text}: {e}") from None
        return self._finish_meta(ctx, instr, mutate, self._meta_created_by(instr), author=author)

    # ---- WORKDIR
    def do_workdir(self, ctx: StageCtx, instr: WorkdirInstr):
        env = self._step_env(ctx)
        path = self._expand(instr, instr.value, env)
        if not path.startswith("/"):
            path = posixpath.join(ctx.state.cfg.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")

        def mutate(c):
            c["WorkingDir"] = path

        created_by = self._meta_created_by(instr)
        key = make_key([ctx.state.id, "WORKDIR", path, created_by])
        hit = self.cached(key)
        if hit is not None:
            return hit, True
        fs = self.image_fs(ctx.state)
        rel = fs.resolve(normalize(path))
        st = fs.lstat(rel) if rel else None
        layer = None
        if rel and (st is None or not stat.S_ISDIR(st.st_mode)):
            if st is not None:
                raise instr.error(f"{instr.text}: {path} exists and is not a directory")
            from .copier import Planner, write_layer

            planner = Planner(fs, "/", None, None)
            planner._parent_chain(rel)
            planner._dir_entry(rel)
            w, _ = write_layer(self.store, planner.plan)
            with w:
                layer = w.commit()
        new = self.commit(ctx, created_by, layer=layer, mutate=mutate)
        self.remember(key, new)
        return new, False

    # ---- RUN
    def _run_argv(self, ctx: StageCtx, instr: RunInstr) -> tuple[list[str], list[str], str]:
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

    def do_run(self, ctx: StageCtx, instr: RunInstr, base: dict):
        argv, scripts, created_by = self._run_argv(ctx, instr)
        image_env = ctx.state.env()
        args_env = {k: v for k, v in ctx.args.items() if v is not None and k not in image_env}
        proxies = {k: self.build_args[k] for k in PROXY_ARGS if k in self.build_args and k not in ctx.args}
        for k in proxies:
            self.consumed_args.add(k)
        if args_env:
            created_by = f"|{len(args_env)} " + " ".join(f"{k}={v}" for k, v in args_env.items()) + " " + created_by
        network = instr.network if instr.network not in (None, "default") else self.network
        key = make_key([ctx.state.id, "RUN", argv, sorted(args_env.items()), network,
                        [s[1] for s in scripts]])
        hit = self.cached(key)
        if hit is not None:
            return hit, True
        self.register(ctx.state)
        volumes = []
        tmpfiles = []
        try:
            for _kind, data in scripts:
                self.store.tmp.mkdir(parents=True, exist_ok=True)
                p = os.path.join(self.store.tmp, f"layer-script-{os.urandom(8).hex()}")
                with open(p, "w") as f:
                    f.write(data)
                os.chmod(p, 0o755)
                tmpfiles.append(p)
                volumes.append(f"{p}:{argv[0]}:ro")
            if self.runner is None:
                from .runner import make_runner

                self.runner = make_runner(self.runner_kind, self.root)
            env = dict(args_env)
            env.update(proxies)

            def output(line: str) -> None:
                self._output.append(line)
                self.emit(kind="output", line=line, **base)

            try:
                res = self.runner.run(ctx.state.id, argv, env=env, network=network, volumes=volumes,
                                      on_output=output)
            except errors.ImageNotFound:
                # another build unregistered the same intermediate image: register it again
                self.registered = [i for i in self.registered if i != ctx.state.id]
                self.register(ctx.state)
                res = self.runner.run(ctx.state.id, argv, env=env, network=network, volumes=volumes,
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

            layer = commit_upper(self.store, str(res.upper), self.image_fs(ctx.state))
        finally:
            self.runner.remove(res)
        new = self.commit(ctx, created_by, layer=layer)
        self.remember(key, new)
        return new, False

    # ---- COPY / ADD
    def do_copy(self, ctx: StageCtx, instr: CopyInstr):
        from . import copier

        env = self._step_env(ctx)
        name = "ADD" if instr.is_add else "COPY"
        sources = [self._expand(instr, s, env) for s in instr.sources]
        dest = self._expand(instr, instr.dest, env)
        chown = self._expand(instr, instr.chown, env) if instr.chown else None
        chmod = self._expand(instr, instr.chmod, env) if instr.chmod else None
        mode = copier.parse_chmod(chmod) if chmod else None
        fs = self.image_fs(ctx.state)
        owner = copier.parse_chown(chown, fs) if chown else None
        workdir = ctx.state.cfg.get("WorkingDir") or "/"
        planner = copier.Planner(fs, workdir, owner, mode, hashes=self.hashes)
        key_extra: list = [name, dest, owner, mode, workdir]
        nsrc = len(sources) + len(instr.inline)
        from_id = None
        if instr.from_:
            frm = self._expand(instr, instr.from_, env)
            src_fs, from_id = self._from_fs(ctx, instr, frm)
            key_extra.append(from_id)
            found = copier.resolve_sources(src_fs, sources, name)
            kind = self._summary_kind(nsrc, found)
            planner.copy(src_fs, found, dest, keep_owner=True)
            planner.plan.extra.append("from:" + from_id)
            for s in found:
                planner.plan.extra.append(f"src:{s.given}")
            for e in planner.plan.entries:
                if e.kind == "file":
                    e.digest = "from-image"  # the source image id covers the content
        else:
            local: list[str] = []
            downloads = []
            for s in sources:
                is_url = re.match(r"^[a-z][a-z0-9+.-]*://", s) is not None
                if is_url and not instr.is_add:
                    raise ValueError(f"source can't be a URL for COPY (use ADD): {s}")
                if instr.is_add and re.match(r"^https?://", s):
                    downloads.append(s)
                elif instr.is_add and (is_url or s.startswith("git@")):
                    raise ValueError(f"{name} source {s!r}: only http(s) URLs are supported")
                else:
                    local.append(s)
            if instr.checksum and (local or not downloads):
                raise ValueError("--checksum can only be used with an http(s) source")
            found = copier.resolve_sources(self.context, local, name) if local else []
            kind = self._summary_kind(nsrc, found)
            if len(found) + len(downloads) + len(instr.inline) > 1 and not dest.endswith("/"):
                raise ValueError(f"When using {name} with more than one source file, the destination must be a "
                                 f"directory and end with a /")
            archives = []
            plain = []
            for s in found:
                if instr.is_add and stat.S_ISREG(s.st.st_mode) and copier.is_archive(self.context.host_path(s.rel)):
                    archives.append(s)
                else:
                    plain.append(s)
            if plain:
                planner.copy(self.context, plain, dest)
            for doc in instr.inline:
                data = doc.text()
                if doc.expand:
                    try:
                        data = self.lexer.process(data, env, raw_escapes=True, skip_quotes=True).word
                    except ExpandError as e:
                        raise ValueError(str(e)) from None
                planner.inline(doc.name, data.encode(), dest)
            tmp_paths: list[str] = []
            try:
                for url in downloads:
                    path, fname, mtime, digest = copier.download(url, self.store, instr.checksum)
                    tmp_paths.append(path)
                    planner.download(path, fname, dest, mtime, digest)
                    planner.plan.extra.append(f"url:{url}:{digest}")
                for s in archives:
                    p = self.context.host_path(s.rel)
                    digest = self.hashes.get(s.rel, copier.file_key(s.st)) if s.rel else None
                    if digest is None:
                        from ..image.digest import sha256_file

                        digest = sha256_file(p)[0][7:]
                        self.hashes.put(s.rel, copier.file_key(s.st), digest)
                    planner.plan.extra.append(f"archive:{s.given}:{digest}:{dest}")
                    planner.archive_dest(dest)
                    planner.plan.archives.append((p, dest))
                return self._copy_finish(ctx, instr, planner, key_extra, kind)
            finally:
                for p in tmp_paths:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
        return self._copy_finish(ctx, instr, planner, key_extra, kind)

    @staticmethod
    def _summary_kind(nsrc: int, found) -> str:
        if nsrc > 1 or len(found) > 1:
            return "multi"
        if found and stat.S_ISDIR(found[0].st.st_mode):
            return "dir"
        return "file"

    def _copy_finish(self, ctx: StageCtx, instr: CopyInstr, planner, key_extra: list, kind: str):
        from . import copier

        plan = planner.plan
        csum = copier.checksum(plan)
        if csum is not None:
            key = make_key([ctx.state.id, *key_extra, csum])
            hit = self.cached(key)
            if hit is not None:
                return hit, True
        trees = []
        try:
            for path, dest in plan.archives:
                tree = copier.extract_archive(self.store, path)
                trees.append(tree)
                planner.archive(tree, dest)
            writer, csum = copier.write_layer(self.store, plan, self.hashes)
            with writer:
                key = make_key([ctx.state.id, *key_extra, csum])
                hit = self.cached(key)
                if hit is not None:
                    return hit, True  # e.g. only mtimes changed: the earlier layer stays
                layer = writer.commit() if plan.entries else None
        finally:
            from ..image.layer import remove_tree

            for t in trees:
                remove_tree(t)
        what = "ADD" if instr.is_add else "COPY"
        new = self.commit(ctx, f"/bin/sh -c #(nop) {what} {kind}:{csum} in {instr.dest} ", layer=layer)
        self.remember(key, new)
        return new, False

    def _from_fs(self, ctx: StageCtx, instr: CopyInstr, frm: str) -> tuple[ImageFS, str]:
        idx = self.stage_index(frm)
        if idx is None and frm.isdigit():
            idx = int(frm)
            if idx >= len(self.parsed.stages):
                raise ValueError(f"invalid --from: stage index {frm} does not exist")
        if idx is not None:
            if idx == ctx.stage.index:
                raise ValueError(f"invalid --from: a stage cannot copy from itself ({frm!r})")
            state = self.build_stage(idx).state
            return self.image_fs(state), state.id
        if frm.lower() == "scratch":
            return EmptyFS(), "scratch"  # type: ignore[return-value]
        img = self.image(instr, frm)
        state = self._state_of(img)
        return self.image_fs(state), img.id

    # ------------------------------------------------------------------ end
    def finish(self, state: State, tags: list[str]):
        mdigest = self.materialize(state)
        try:
            img = self.store.resolve(state.id)
        except errors.ImageNotFound:
            img = None
        if img is None or mdigest not in img.manifest_digests or not all(t in img.names for t in tags):
            img = self.store.add_image(mdigest, tags)  # (a rebuild that changed nothing writes nothing)
        self.registered = [i for i in self.registered if i != state.id]
        return img

    def cleanup(self) -> None:
        """Unregister the intermediate images (their blobs stay as cache); close the runner."""
        for image_id in reversed(self.registered):
            try:
                img = self.store.resolve(image_id)
                if not img.names:
                    self.store.remove(image_id)
            except errors.JupyboxError:
                pass
        self.registered = []
        try:
            self.hashes.save()
        except OSError:
            pass
        if self.runner is not None:
            self.runner.close()
