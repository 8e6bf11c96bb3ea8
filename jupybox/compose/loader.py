"""Files to a :class:`Project`, in compose-go's order (``loader/loader.go``, ``cli/options.go``).

1. **Files**: ``-f`` (repeatable, in order) or ``$COMPOSE_FILE``; otherwise the first of
   ``compose.yaml``, ``compose.yml``, ``docker-compose.yml``, ``docker-compose.yaml`` in the
   current directory or the nearest parent that has one, plus its ``compose.override.*``.
2. **Environment**: the process environment over ``--env-file`` files, or over the project
   directory's ``.env`` (the process environment wins).
3. **Name**: ``-p``, ``$COMPOSE_PROJECT_NAME``, the files' ``name:``, or the directory's name
   (lower-cased, only ``[a-z0-9_-]``).
4. **Each file**, each YAML document: interpolated, merged into the model (``merge.py``), made
   unique, validated against the compose spec's schema, turned into long syntax
   (``canonical.py``).
5. **The project**: normalized (``normalize.py``); services outside the active profiles
   (``--profile``, ``$COMPOSE_PROFILES``; services named on the command line enable theirs) are
   set aside; the rest is checked (``validate.py``), gets its env files, and its types.

Any error is one line naming the file, the line and the key (exit 1).
"""

from __future__ import annotations

import os
import re

from . import canonical, envfile, normalize, schema, validate
from .errors import ComposeError
from .interpolation import interpolate
from .merge import enforce_unicity, merge
from .project import Project
from .yamlfile import Document, load_file, load_text

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")
MAX_FILES = 32
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def normalize_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def find_files(cwd: str) -> list[str]:
    """The default file (and its override) of ``cwd`` or its nearest parent that has one."""
    d = os.path.abspath(cwd)
    while True:
        found = [n for n in DEFAULT_FILES if os.path.isfile(os.path.join(d, n))]
        if found:
            out = [os.path.join(d, found[0])]
            overrides = [n for n in OVERRIDE_FILES if os.path.isfile(os.path.join(d, n))]
            if overrides:
                out.append(os.path.join(d, overrides[0]))
            return out
        parent = os.path.dirname(d)
        if parent == d:
            return []
        d = parent


def _shown(path: str, cwd: str) -> str:
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel


class _Where:
    """path -> (file, line): the deepest key any file has, the latest file first."""

    def __init__(self):
        self.docs: list[Document] = []

    def __call__(self, path) -> tuple:
        path = tuple(path)
        for n in range(len(path), 0, -1):
            for doc in reversed(self.docs):
                line = doc.lines.get(path[:n])
                if line is not None:
                    return doc.file, line
        return (self.docs[-1].file, None) if self.docs else (None, None)


def load(files=None, *, project_name: str | None = None, project_directory: str | None = None,
         env_files=None, profiles=None, environ: dict | None = None, text: str | None = None,
         text_name: str = "<cell>", services=None, cwd: str | None = None) -> Project:
    """Load a project from ``files`` (or the default ones), or from ``text`` (a notebook cell)."""
    cwd = os.path.abspath(cwd or os.getcwd())
    environ = dict(os.environ if environ is None else environ)
    paths: list[str] = []
    if text is None:
        if files:
            paths = [os.path.join(cwd, f) for f in files]
        elif environ.get("COMPOSE_FILE"):
            sep = environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
            paths = [os.path.join(cwd, f) for f in environ["COMPOSE_FILE"].split(sep) if f]
        else:
            paths = find_files(cwd)
            if not paths:
                raise ComposeError("no configuration file provided: not found (compose.yaml, compose.yml, "
                                   "docker-compose.yml or docker-compose.yaml)")
        if len(paths) > MAX_FILES:
            raise ComposeError(f"more than {MAX_FILES} compose files")
    workdir = os.path.abspath(project_directory) if project_directory else (
        os.path.dirname(paths[0]) if paths else cwd)

    # 2. the environment
    env = dict(environ)
    dotenv_paths = [os.path.join(cwd, f) for f in env_files] if env_files else []
    if not env_files and environ.get("COMPOSE_DISABLE_ENV_FILE", "").lower() not in ("1", "true"):
        default = os.path.join(workdir, ".env")
        if os.path.isfile(default):
            dotenv_paths = [default]
    from_files: dict = {}
    for p in dotenv_paths:
        from_files.update(envfile.read(p, lambda k: environ.get(k), _shown(p, cwd)))
    for k, v in from_files.items():
        env.setdefault(k, v)

    # 3. the documents, and the name
    docs: list[Document] = []
    if text is not None:
        docs = load_text(text, text_name)
    else:
        for p in paths:
            docs += load_file(p, _shown(p, cwd))
    name = _project_name(project_name, env, docs, workdir)
    env["COMPOSE_PROJECT_NAME"] = name

    # 4. each document into the model
    where = _Where()
    warnings: list[str] = []
    model: dict = {}
    for doc in docs:
        where.docs.append(doc)
        data, unset = interpolate(doc.data, lambda k: env.get(k), where)
        for var in unset:
            msg = f'The "{var}" variable is not set. Defaulting to a blank string.'
            if msg not in warnings:
                warnings.append(msg)
        model = enforce_unicity(merge(model, data))
        schema.validate(model, where)
        if "version" in model:
            warnings.append(f"{doc.file}: the attribute `version` is obsolete, it will be ignored")
        model = enforce_unicity(canonical.canonical(model, where))
    if not model:
        raise ComposeError("empty compose file", docs[0].file if docs else None)
    _refuse_unsupported_structure(model, where)
    return _project(model, name, env, workdir, where, warnings, profiles, services, docs)


def _refuse_unsupported_structure(model: dict, where) -> None:
    """``include`` and ``extends`` pull other files into the model: not done here, and a model
    without them would be silently another project."""
    if "include" in model:
        raise ComposeError("'include' is not supported by jupybox", *where(("include",)), "include")
    for name, svc in (model.get("services") or {}).items():
        if isinstance(svc, dict) and "extends" in svc:
            path = ("services", name, "extends")
            raise ComposeError("'extends' is not supported by jupybox", *where(path), f"services.{name}.extends")


def _project_name(given: str | None, env: dict, docs: list[Document], workdir: str) -> str:
    if given:
        if not _NAME.match(given):
            raise ComposeError(f"invalid project name {given!r}: must consist only of lowercase alphanumeric "
                               "characters, hyphens, and underscores as well as start with a letter or number")
        return given
    if env.get("COMPOSE_PROJECT_NAME"):
        return _project_name(env["COMPOSE_PROJECT_NAME"], {}, [], workdir)
    named = ""
    for doc in docs:
        raw = doc.data.get("name")
        if isinstance(raw, str) and raw:
            named, _ = interpolate(raw, lambda k: env.get(k))
    name = normalize_name(named) if named else normalize_name(os.path.basename(workdir))
    if not name:
        raise ComposeError("project name must not be empty: use -p NAME or name: in the file")
    return name


def _project(model, name, env, workdir, where, warnings, profiles, selected, docs) -> Project:
    model = normalize.normalize(model, name, env, workdir, where)
    if profiles is None:
        profiles = [p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",") if p.strip()]
    profiles = list(profiles)
    all_services = model["services"]
    for s in selected or []:  # naming a service enables its profiles (compose's WithServicesEnabled)
        if s in all_services:
            profiles += [p for p in all_services[s].get("profiles") or [] if p not in profiles]

    def enabled(svc) -> bool:
        own = svc.get("profiles") or []
        return not own or "*" in profiles or any(p in own for p in profiles)

    services = {n: s for n, s in all_services.items() if enabled(s)}
    disabled = {n: s for n, s in all_services.items() if n not in services}
    networks = model.get("networks") or {}
    volumes = model.get("volumes") or {}
    validate.check(services, disabled, networks, volumes, where)
    typed = {}
    for n, s in services.items():
        base = ("services", n)
        s = normalize.typed_service(s, base, where)
        normalize.resolve_env_files(s, env, base, where)
        typed[n] = s
    disabled = {n: normalize.typed_service(s, ("services", n), where) for n, s in disabled.items()}
    extensions = {k: v for k, v in model.items() if k.startswith("x-")}
    return Project(name=name, workdir=workdir, files=[d.file for d in docs], environment=env, services=typed,
                   disabled=disabled, networks=networks, volumes=volumes, extensions=extensions,
                   profiles=profiles, warnings=warnings, where=where)
