"""The entry points: :func:`build` (a context and a Dockerfile → an image), :func:`parse`, and
:func:`apply_changes` (``import/commit --change`` lines with the Dockerfile's rules)."""

from __future__ import annotations

import os
import re


def parse(text: str, filename: str = "Dockerfile"):
    """Parse and validate a Dockerfile; returns its stages (:class:`.instructions.ParsedFile`)."""
    from .instructions import parse_stages
    from .parser import parse as parse_text

    return parse_stages(parse_text(text, filename))


def _read_dockerfile(context, dockerfile) -> tuple[str, str, str | None]:
    """(text, display name, path for <Dockerfile>.dockerignore or None)."""
    from ..errors import UsageError

    if dockerfile is None:
        if context is None:
            raise UsageError("no context and no Dockerfile given")
        path = os.path.join(os.fspath(context), "Dockerfile")
        if not os.path.exists(path) and os.path.exists(os.path.join(os.fspath(context), "dockerfile")):
            path = os.path.join(os.fspath(context), "dockerfile")
        dockerfile = path
        name = "Dockerfile"
    elif hasattr(dockerfile, "read"):
        data = dockerfile.read()
        # BuildKit reads bytes: a Dockerfile that is not UTF-8 is parsed as it is
        text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
        return text, getattr(dockerfile, "display_name", "Dockerfile"), None
    elif isinstance(dockerfile, str) and not os.path.exists(dockerfile) and (
            "\n" in dockerfile or re.match(r"\s*(#|(FROM|ARG)\s)", dockerfile, re.IGNORECASE)):
        return dockerfile, "Dockerfile", None
    else:
        name = os.fspath(dockerfile)
        if (not os.path.isabs(name) and not os.path.exists(name) and context is not None
                and os.path.exists(os.path.join(os.fspath(context), name))):
            dockerfile = os.path.join(os.fspath(context), name)  # docker: -f relative to the context too
    path = os.fspath(dockerfile)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UsageError(f"unable to prepare context: the Dockerfile ({path}) cannot be found") from None
    except IsADirectoryError:
        raise UsageError(f"the Dockerfile {path} is a directory") from None
    return data.decode("utf-8", "surrogateescape"), name, path


def build(context=None, dockerfile=None, *, tags=(), build_args=None, target=None, no_cache: bool = False,
          labels=None, network: str = "none", progress: str | None = None, root=None, on_step=None,
          runner: str | None = None, pull: bool | str = True, out=None, err=None, tag: str | None = None,
          secrets=None, outputs=None, iidfile=None):
    """Build the Dockerfile ``dockerfile`` (default ``CONTEXT/Dockerfile``; a path, a file object,
    or Dockerfile text: a string with a newline, or starting with FROM/ARG/#) with the build
    context directory ``context`` (None: no context). Returns the built
    :class:`jupybox.image.Image`, tagged ``tags`` (``tag``: one more name).

    ``on_step(event)`` receives a :class:`StepEvent` per step start/output line/end/error;
    ``progress`` ("auto", "plain", "quiet") prints the default display instead (to ``out``).
    ``runner``: kept for callers; every RUN step runs in a container of the store's service
    (:func:`.runner.make_runner`).
    ``pull``: base images are pulled when missing (True), never (False) or first ("always").
    ``secrets``: ``{id: bytes}`` for ``RUN --mount=type=secret`` (see :mod:`.secrets`);
    ``outputs``: ``["type=local,dest=DIR", "type=tar,dest=FILE"]`` (see :mod:`.export`) also
    writes the final filesystem out; ``iidfile``: a file that receives the image id.
    Raises :class:`jupybox.errors.BuildError` ("FILE:LINE: message") when the build fails;
    nothing is tagged then and no container is left."""
    from ..errors import UsageError
    from ..image.reference import parse_reference
    from ..image.store import ImageStore
    from ..paths import Layout
    from .builder import Builder
    from .context import ContextFS
    from .dockerignore import read_dockerignore
    from .instructions import parse_stages
    from .parser import parse as parse_text

    if network not in ("none", "host", "default"):
        raise UsageError(f"network mode {network!r} is not supported: use none or host")
    if network == "default":
        network = "none"
    if isinstance(tags, str):
        tags = [tags]
    tags = list(tags or ()) + ([tag] if tag else [])
    refs = []
    for t in tags or ():
        ref = parse_reference(t)
        if ref.digest is not None:
            raise UsageError(f"invalid tag {t!r}: a tag cannot contain a digest")
        refs.append(str(ref))
    if context is not None:
        cpath = os.fspath(context)
        if not os.path.isdir(cpath):
            raise UsageError(f"unable to prepare context: path {cpath!r} not found or not a directory")
    text, name, dfpath = _read_dockerfile(context, dockerfile)
    parsed = parse_stages(parse_text(text, name))
    try:
        patterns = read_dockerignore(context, dfpath)
        ctxfs = ContextFS(context, patterns)
    except ValueError as e:
        raise UsageError(f".dockerignore: {e}") from None
    layout = Layout(root).ensure()
    store = ImageStore(layout)
    if on_step is None and progress is not None:
        from .progress import Printer

        on_step = Printer(progress, out, err, multi_stage=len(parsed.stages) > 1)
    from .export import Output, export, parse_output

    outs = [o if isinstance(o, Output) else parse_output(o) for o in (outputs or ())]
    secret_values = {str(k): (v.encode() if isinstance(v, str) else bytes(v)) for k, v in (secrets or {}).items()}
    builder = Builder(store, layout.root, ctxfs, parsed, build_args=dict(build_args or {}), target=target,
                      no_cache=no_cache, labels=dict(labels or {}), network=network, runner_kind=runner,
                      on_step=on_step, pull=pull, secrets=secret_values)
    with store.lease():
        try:
            state = builder.run()
            image = builder.finish(state, refs)
            if outs:
                export(store, image, outs)
        finally:
            builder.cleanup()
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image.id)
    image.build_warnings = builder.warnings
    return image


CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME",
                       "WORKDIR")


def apply_changes(changes, config: dict | None = None) -> dict:
    """``docker import/commit --change`` lines (``CMD ["sh"]``, ``ENV K=V``, ``WORKDIR /x``, ...) applied
    to an image config's ``config`` section with the Dockerfile's own rules (parsing, JSON and shell
    forms, quotes, ``$VAR`` expansion with the config's Env). Returns the new section; raises
    UsageError. (The same code as ``jupybox build``: ``jupybox.image.importer.parse_changes`` can
    delegate here.)"""
    import copy
    import posixpath

    from ..errors import BuildError, UsageError
    from .metadata import meta_effect
    from .expand import ExpandError, Lexer
    from .instructions import WorkdirInstr, from_node
    from .parser import parse as parse_text

    section = copy.deepcopy(config or {})
    if isinstance(changes, str):
        changes = [changes]
    lexer = Lexer()
    for raw in changes or []:
        text = str(raw).strip()
        if not text or text.startswith("#"):
            continue
        word = text.split(None, 1)[0].upper()
        if word not in CHANGE_INSTRUCTIONS:
            raise UsageError(f"invalid change {text!r}: {word} is not a valid change command "
                             f"({', '.join(CHANGE_INSTRUCTIONS)})")
        try:
            instr = from_node(parse_text(text, "change").nodes[0])
            env = dict(e.partition("=")[::2] for e in section.get("Env") or [])
            if isinstance(instr, WorkdirInstr):
                path = lexer.process_word(instr.value, env)
                section["WorkingDir"] = posixpath.normpath(posixpath.join(section.get("WorkingDir") or "/", path))
                continue
            mutate, _author, _ = meta_effect(instr, env, lexer, section, cmd_set=True)
        except (BuildError, ExpandError) as e:
            raise UsageError(f"invalid change {text!r}: {str(e).split(': ', 1)[-1]}") from None
        if mutate is not None:
            mutate(section)
    return section
