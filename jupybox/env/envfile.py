"""``environment.yml`` (conda's environment file), read with PyYAML's node tree so that every
error names its line.

Only what needs no conda channel can be built: ``python=X.Y`` (checked against the base image),
``pip`` and the ``pip:`` list (installed by pip, as requirements). Conda packages need a conda
channel (conda-forge, defaults), and none is reachable from a machine that may use only PyPI and
Debian's archive: a conda installer from PyPI would still have nothing to install. They are refused
in one line that says where to move them.
"""

from __future__ import annotations

import re
from pathlib import Path

from .binderfiles import MAX_FILE, BinderFileError

PYTHON_SPEC = re.compile(r"^python\s*(=|==)\s*(3)\.(\d+)(\.[\d*]+)?\s*$")
KEYS = ("name", "channels", "dependencies", "prefix", "variables")


def read_environment(path: Path, shown: str) -> tuple[str | None, str | None, list[str]]:
    """(python "X.Y" or None, where it was said, the pip: requirements) of an environment.yml."""
    import yaml

    if path.stat().st_size > MAX_FILE:
        raise BinderFileError(f"{shown}: larger than {MAX_FILE} bytes, not a configuration file")
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise BinderFileError(f"{shown}:1: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise BinderFileError(f"{shown}:{line}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if node is None:
        return None, None, []
    if not isinstance(node, yaml.MappingNode):
        raise BinderFileError(f"{shown}:{node.start_mark.line + 1}: expected a mapping (name:, dependencies:)")
    python = where = None
    pip: list[str] = []
    for key, value in node.value:
        k = key.value if isinstance(key, yaml.ScalarNode) else None
        line = key.start_mark.line + 1
        if k not in KEYS:
            raise BinderFileError(f"{shown}:{line}: unknown key {k!r} (expected one of {', '.join(KEYS)})")
        if k == "dependencies":
            if not isinstance(value, yaml.SequenceNode):
                raise BinderFileError(f"{shown}:{line}: dependencies: expected a list")
            for item in value.value:
                iline = item.start_mark.line + 1
                if isinstance(item, yaml.MappingNode):
                    pip += _pip_section(item, shown)
                    continue
                if not isinstance(item, yaml.ScalarNode):
                    raise BinderFileError(f"{shown}:{iline}: expected a package or a pip: list")
                text = str(item.value).strip()
                m = PYTHON_SPEC.match(text)
                if m:
                    python, where = f"{m.group(2)}.{m.group(3)}", f"{shown}:{iline}"
                elif text in ("python", "pip"):
                    continue
                else:
                    raise BinderFileError(
                        f"{shown}:{iline}: conda package {text!r}: no conda channel can be reached from here "
                        "(packages come from PyPI and Debian only): list it under `- pip:` (PyPI's name) or in "
                        "requirements.txt, or apt.txt for a Debian package")
        elif k == "channels" and not isinstance(value, yaml.SequenceNode):
            raise BinderFileError(f"{shown}:{line}: channels: expected a list")
    return python, where, pip


def _pip_section(node, shown: str) -> list[str]:
    import yaml
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for key, value in node.value:
        line = key.start_mark.line + 1
        if not (isinstance(key, yaml.ScalarNode) and key.value == "pip"):
            raise BinderFileError(f"{shown}:{line}: only a pip: list may stand among the dependencies")
        if not isinstance(value, yaml.SequenceNode):
            raise BinderFileError(f"{shown}:{line}: pip: expected a list")
        for item in value.value:
            iline = item.start_mark.line + 1
            text = str(item.value).strip() if isinstance(item, yaml.ScalarNode) else ""
            if text.startswith("-"):
                raise BinderFileError(f"{shown}:{iline}: {text.split()[0]}: pip options are not supported here: "
                                      "use requirements.txt")
            try:
                Requirement(text)
            except InvalidRequirement as e:
                raise BinderFileError(f"{shown}:{iline}: invalid requirement {text!r}: "
                                      f"{str(e).splitlines()[0]}") from None
            out.append(text)
    return out
