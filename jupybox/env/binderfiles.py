"""A repository's Binder files, read and checked before anything is built.

repo2docker's rules for where they are: a ``binder/`` (or ``.binder/``) directory, when there is
one, holds them; otherwise the repository's top directory does. Every file is checked here, so a
typo is one line naming the file and the line (``requirements.txt:3: ...``) instead of a failed
``pip`` deep in a build:

* ``requirements.txt`` -- pip's requirements format: requirements are parsed with ``packaging``
  (the parser pip itself vendors), options are the ones pip accepts in a requirements file
  (``-r`` of another file of the repository, ``-c``, ``--index-url``, ``--hash=...``, ...);
* ``apt.txt`` -- Debian package names (``name``, ``name=version``, ``name:arch``), one per line;
* ``runtime.txt`` -- ``python-X.Y`` (the base image must have that Python: see :mod:`.binder`);
* ``environment.yml`` -- only what needs no conda channel (none can be reached from here: the
  package indexes jupybox may use are PyPI and Debian's, and no conda installer found there
  brings conda-forge with it): ``python=X.Y``, ``pip`` and a ``pip:`` list; a conda package is a
  one-line error that says where to move it;
* ``postBuild`` (run once in the build) and ``start`` (the image's entrypoint, wrapping every
  command), both scripts of the repository.

Files repo2docker knows and jupybox cannot build from (``install.R``, ``Project.toml``,
``default.nix``, ``Pipfile`` ...) are refused in one line rather than silently ignored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

MAX_FILE = 1 << 20  # a Binder file larger than 1 MiB is not a configuration file
MAX_INCLUDES = 16  # nested -r / -c
UNSUPPORTED = {
    "install.R": "R environments", "DESCRIPTION": "R packages", "Project.toml": "Julia environments",
    "REQUIRE": "Julia environments", "default.nix": "Nix environments", "Pipfile": "Pipenv environments",
    "Pipfile.lock": "Pipenv environments", "environment.yaml": "environment.yaml (repo2docker reads .yml only)",
}
APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$")
RUNTIME = re.compile(r"^python-(3)\.(\d+)(\.\d+)?$")
# pip's options in a requirements file: those taking a value, and flags
REQ_VALUE_OPTIONS = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url",
                     "-f", "--find-links", "--no-binary", "--only-binary", "--trusted-host", "--global-option",
                     "--config-settings", "--use-feature"}
REQ_FLAGS = {"--pre", "--prefer-binary", "--no-index", "--require-hashes"}
PER_REQ_OPTIONS = {"--hash", "--global-option", "--config-settings"}


class BinderFileError(UsageError):
    """A Binder file that cannot be built from: ``FILE:LINE: what``."""


@dataclass
class Requirements:
    path: Path  # the file (relative names below are the repository's)
    names: list[str] = field(default_factory=list)  # normalized project names, in order
    hashed: bool = False  # pip's hash-checking mode (a lock)
    includes: list[Path] = field(default_factory=list)  # -r / -c files, checked too


@dataclass
class BinderConfig:
    repo: Path  # the repository (the build context)
    config_dir: Path  # where the Binder files are (repo, repo/binder or repo/.binder)
    requirements: Requirements | None = None
    apt: list[str] = field(default_factory=list)
    python: str | None = None  # "3.11": from runtime.txt or environment.yml
    python_from: str | None = None  # "runtime.txt:1" — where that came from, for messages
    env_pip: list[str] = field(default_factory=list)  # environment.yml's pip: section
    postbuild: Path | None = None
    start: Path | None = None
    setup: Path | None = None  # setup.py / pyproject.toml at the top: pip install .

    def rel(self, path: Path) -> str:
        """``path`` as the repository names it (``binder/requirements.txt``)."""
        return os.path.relpath(path, self.repo)


def _read(path: Path, shown: str) -> list[str]:
    try:
        st = path.stat()
    except OSError as e:
        raise BinderFileError(f"{shown}: cannot be read: {e.strerror}") from None
    if st.st_size > MAX_FILE:
        raise BinderFileError(f"{shown}: {st.st_size} bytes: larger than {MAX_FILE} bytes, not a configuration file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BinderFileError(f"{shown}:{line}: not UTF-8 text") from None
    if "\x00" in text:
        raise BinderFileError(f"{shown}:{text[: text.index(chr(0))].count(chr(10)) + 1}: a NUL byte: not a text file")
    return text.splitlines()


def config_dir(repo: Path) -> Path:
    """``repo/binder`` or ``repo/.binder`` when there is one (both: an error, as repo2docker says), else ``repo``."""
    found = [repo / d for d in ("binder", ".binder") if (repo / d).is_dir()]
    if len(found) > 1:
        raise BinderFileError(f"{repo}: both binder/ and .binder/ exist: keep one (repo2docker refuses this too)")
    return found[0] if found else repo


def read(repo: str | os.PathLike) -> BinderConfig:
    """Read and check the Binder files of ``repo``; raises :class:`BinderFileError` (one line)."""
    repo = Path(repo).resolve()
    if not repo.is_dir():
        raise UsageError(f"{repo}: not a directory")
    cdir = config_dir(repo)
    cfg = BinderConfig(repo=repo, config_dir=cdir)
    for name, what in UNSUPPORTED.items():
        if (cdir / name).exists():
            raise BinderFileError(f"{cfg.rel(cdir / name)}:1: {what} are not built by jupybox build --binder "
                                  "(it builds requirements.txt, environment.yml's pip: section, apt.txt, "
                                  "runtime.txt, setup.py, postBuild, start)")
    if (cdir / "Dockerfile").exists():
        raise BinderFileError(f"{cfg.rel(cdir / 'Dockerfile')}:1: a Dockerfile replaces the Binder files: build it "
                              f"with `jupybox build {cfg.rel(cdir) if cdir != repo else '.'}`")
    if (cdir / "requirements.txt").is_file():
        cfg.requirements = read_requirements(cdir / "requirements.txt", repo)
    if (cdir / "apt.txt").is_file():
        cfg.apt = read_apt(cdir / "apt.txt", cfg.rel(cdir / "apt.txt"))
    if (cdir / "runtime.txt").is_file():
        cfg.python, cfg.python_from = read_runtime(cdir / "runtime.txt", cfg.rel(cdir / "runtime.txt"))
    if (cdir / "environment.yml").is_file():
        from .envfile import read_environment

        python, where, pip = read_environment(cdir / "environment.yml", cfg.rel(cdir / "environment.yml"))
        if python and cfg.python and python != cfg.python:
            raise BinderFileError(f"{where}: python {python} here, but {cfg.python_from} asks for python {cfg.python}")
        if python and not cfg.python:
            cfg.python, cfg.python_from = python, where
        cfg.env_pip = pip
    for name in ("postBuild", "start"):
        p = cdir / name
        if p.exists():
            if not p.is_file():
                raise BinderFileError(f"{cfg.rel(p)}: not a file")
            lines = _read(p, cfg.rel(p))
            if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
                raise BinderFileError(f"{cfg.rel(p)}:1: an empty script")
            setattr(cfg, name.lower(), p)
    for name in ("setup.py", "pyproject.toml"):
        if (repo / name).is_file() and cfg.requirements is None and not cfg.env_pip:
            cfg.setup = repo / name  # repo2docker installs the repository itself when it has nothing else
            break
    return cfg


def read_apt(path: Path, shown: str) -> list[str]:
    out = []
    for i, raw in enumerate(_read(path, shown), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for word in line.split():
            if not APT_NAME.match(word):
                raise BinderFileError(f"{shown}:{i}: {word!r} is not a Debian package name "
                                      "(lowercase letters, digits, + - .; optionally :ARCH and =VERSION)")
            out.append(word)
    return out


def read_runtime(path: Path, shown: str) -> tuple[str, str]:
    lines = [(i, ln.strip()) for i, ln in enumerate(_read(path, shown), 1) if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise BinderFileError(f"{shown}:1: empty: expected python-X.Y")
    i, text = lines[0]
    if text.startswith("r-"):
        raise BinderFileError(f"{shown}:{i}: {text}: R environments are not built by jupybox build --binder")
    m = RUNTIME.match(text)
    if not m:
        raise BinderFileError(f"{shown}:{i}: {text!r}: expected python-X.Y (e.g. python-3.11)")
    if len(lines) > 1:
        raise BinderFileError(f"{shown}:{lines[1][0]}: one line expected (python-X.Y), found more")
    return f"{m.group(1)}.{m.group(2)}", f"{shown}:{i}"


def _logical_lines(lines: list[str]):
    """(first line number, text) of pip's logical lines: comments dropped, ``\\`` continuations joined."""
    buf, start = "", None
    for i, raw in enumerate(lines, 1):
        line = re.sub(r"(^|\s+)#.*$", "", raw)
        if start is None:
            start = i
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            yield start, buf.strip()
        buf, start = "", None
    if buf.strip():
        yield start, buf.strip()


def read_requirements(path: Path, repo: Path, seen: tuple = ()) -> Requirements:
    """Check a pip requirements file (and the files it includes with -r/-c, which must be inside
    the repository: the build copies only the repository)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    shown = os.path.relpath(path, repo)
    if len(seen) > MAX_INCLUDES:
        raise BinderFileError(f"{shown}:1: more than {MAX_INCLUDES} nested -r/-c files")
    out = Requirements(path=path)
    for i, text in _logical_lines(_read(path, shown)):
        words = text.split()
        if words[0].startswith("-"):
            opt, eq, value = words[0].partition("=")
            if opt in ("-e", "--editable"):
                raise BinderFileError(f"{shown}:{i}: {opt}: editable installs are not built by jupybox build "
                                      "--binder (list the package, or use setup.py)")
            if opt in REQ_FLAGS and not eq and len(words) == 1:
                continue
            if opt in REQ_VALUE_OPTIONS:
                value = value if eq else (words[1] if len(words) > 1 else "")
                if not value:
                    raise BinderFileError(f"{shown}:{i}: {opt} needs a value")
                if opt in ("-r", "--requirement", "-c", "--constraint"):
                    if "://" in value:
                        raise BinderFileError(f"{shown}:{i}: {opt} {value}: only files of the repository can be "
                                              "included")
                    inc = (path.parent / value).resolve()
                    if inc != repo and repo not in inc.parents:
                        raise BinderFileError(f"{shown}:{i}: {opt} {value}: outside the repository")
                    if not inc.is_file():
                        raise BinderFileError(f"{shown}:{i}: {opt} {value}: no such file")
                    if inc in seen or inc == path:
                        raise BinderFileError(f"{shown}:{i}: {opt} {value}: includes itself")
                    sub = read_requirements(inc, repo, seen + (path,))
                    out.includes += [inc] + sub.includes
                    if opt in ("-r", "--requirement"):
                        out.names += sub.names
                        out.hashed = out.hashed or sub.hashed
                continue
            raise BinderFileError(f"{shown}:{i}: {opt}: not an option pip takes in a requirements file")
        req_text, options = text, []
        m = re.search(r"\s--?[a-z]", " " + text)
        if m and " @ " not in text[: m.start()]:
            req_text, options = text[: m.start() - 1].strip(), text[m.start() - 1:].split()
        for opt in options:
            name, _, value = opt.partition("=")
            if name not in PER_REQ_OPTIONS:
                raise BinderFileError(f"{shown}:{i}: {name}: not an option pip takes after a requirement")
            if name == "--hash":
                if not re.fullmatch(r"(sha256|sha384|sha512):[0-9a-f]{64,128}", value):
                    raise BinderFileError(f"{shown}:{i}: --hash={value}: expected sha256:<64 hex digits>")
                out.hashed = True
        try:
            req = Requirement(req_text)
        except InvalidRequirement as e:
            why = str(e).splitlines()[0]
            if "://" not in req_text and re.match(r"^[./]|\.(whl|tar\.gz|zip)$", req_text):
                why = "a path: pip would read it on the build's machine, not in the repository's image"
            raise BinderFileError(f"{shown}:{i}: invalid requirement {req_text!r}: {why}") from None
        out.names.append(canonicalize_name(req.name))
    return out
