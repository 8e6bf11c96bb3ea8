"""The builder: stages, steps, the cache, and the final image.

One :class:`Builder` per build. Stages are built on demand, starting from the target (the last
stage, or ``--target``): a stage is built only when the target needs it, through ``FROM <stage>``
or ``COPY --from=<stage>``; the others are skipped. Each instruction is one *step* that turns an
image state (config + layers) into the next one:

* the step's cache key (:mod:`.cache`) is looked up first; a hit gives the stored state (same
  image id as before), a miss executes the step and stores the result;
* RUN runs a real container (:mod:`.runner`) on the current state (registered in the store
  for the time of the build, as an untagged image) and takes its layer from the overlay upper
  directory (:func:`.upper.commit_upper`); COPY/ADD write their layer directly
  (:mod:`.copier`); WORKDIR adds a layer only when it creates the directory; all the other
  instructions change the config and add an ``empty_layer`` history entry;
* ONBUILD triggers of a base image run right after its FROM (and are cleared from the child).

Nothing is registered under a name until the last step succeeds; the intermediate images
registered for RUN steps are unregistered at the end (their blobs stay, as build cache), also
after an error or Ctrl-C, and every container is removed.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import stat
import time
from typing import Callable

from .. import errors
from ..errors import BuildError
from ..procs import owner_mark
from . import bases, copy_step, run_step
from .cache import BuildCache, make_key
from .cachemounts import CacheMounts
from .context import ContextFS, ImageFS, normalize
from .events import StepEvent
from .expand import ExpandError, Lexer
from .instructions import (ArgInstr, CopyInstr, EnvInstr, Instruction, ParsedFile, RunInstr, Stage, WorkdirInstr,
                           from_node)
from .metadata import meta_effect
from .state import DEFAULT_PATH, PROXY_ARGS, StageCtx, State, arch, now_rfc3339, platform_args


class Builder:
    def __init__(self, store, root, context: ContextFS, parsed: ParsedFile, *, build_args: dict[str, str],
                 target: str | None, no_cache: bool, labels: dict[str, str], network: str,
                 runner_kind: str | None, on_step: Callable[[StepEvent], None] | None, pull: bool | str = True,
                 secrets: dict[str, bytes] | None = None):
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
        self.pull = pull  # True: when missing, False: never, "always": first (build --pull)
        self.pulled: dict[str, object] = {}
        self.lexer = Lexer(parsed.escape)
        self.cache = BuildCache(self.root)
        self.hashes = self.cache.files(context.root)
        self.file_digests: dict[str, str] = {}  # host path → sha256, for files of layers (immutable)
        self.cache_mounts = CacheMounts(self.root, store.tmp)
        self.secrets = dict(secrets or {})
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
        last = self.parsed.stages[-1].name if self.parsed.stages else ""
        env["TARGETSTAGE"] = self.target or last or "default"
        for instr in self.parsed.meta_args:
            for k, default in instr.args:
                k = self._expand(instr, k, self._vars(env))
                if k in self.build_args:  # the default is not even expanded then (BuildKit)
                    value = self.build_args[k]
                    self.consumed_args.add(k)
                else:
                    value = self._expand(instr, default, self._vars(env)) if default is not None else None
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
            if want not in (f"linux/{arch()}", arch()):
                raise stage.from_instr.error(f"{stage.from_instr.text}: only the host platform (linux/{arch()}) "
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
            ctx.state = State({"architecture": arch(), "os": "linux", "config": {},
                               "rootfs": {"type": "layers", "diff_ids": []}, "history": []}, [])
        else:
            if src is not None:
                raise stage.from_instr.error(f"{stage.from_instr.text}: stage {base!r} is not defined before "
                                             f"this one")
            img = bases.resolve_image(self, stage.from_instr, base)
            if img.is_host:
                ctx.state = bases.host_state(self, stage.from_instr, img)  # the host's view under the layers
            else:
                ctx.state = bases.state_of(self.store, img)
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

    def source_fs(self, ctx: StageCtx, instr: Instruction, frm: str) -> tuple[ImageFS, str]:
        return bases.source_fs(self, ctx, instr, frm)

    # ------------------------------------------------------------------ state helpers
    def image_fs(self, state: State) -> ImageFS:
        from ..image.model import Image

        img = Image(id=state.id, config=state.config, manifest={"layers": state.layers}, store=self.store)
        if not state.layers and not self.store.layer_dirs(img):  # (FROM host: the view, no layers)
            return ImageFS([])
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
            # marked as this process's: a kill -9 of the build leaves it to garbage collection
            self.store.add_image(mdigest, owner=owner_mark())
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
            return run_step.do_run(self, ctx, instr, base)
        if isinstance(instr, CopyInstr):
            return copy_step.do_copy(self, ctx, instr)
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
            if name in self.build_args:  # the default is not even expanded then (BuildKit)
                value = self.build_args[name]
                self.consumed_args.add(name)
            else:
                value = self._expand(instr, default, env) if default is not None else None
            if value is None and name not in self.build_args and name in self.global_args:
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
            from .sources import user_ids

            # the directories it creates belong to USER (BuildKit since 2019)
            user = ctx.state.cfg.get("User") or ""
            owner = user_ids(user, fs, strict=False) if user else None
            planner = Planner(fs, "/", owner, None)
            planner._parent_chain(rel)
            planner._dir_entry(rel)
            w, _ = write_layer(self.store, planner.plan)
            with w:
                layer = w.commit()
        new = self.commit(ctx, created_by, layer=layer, mutate=mutate)
        self.remember(key, new)
        return new, False

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
        self.cache_mounts.close()
        if self.runner is not None:
            self.runner.close()
