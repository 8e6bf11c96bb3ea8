"""Compose: several containers from one file (``jupybox compose``, ``%%compose``).

    project = jupybox.compose.load(["compose.yaml"])          # -> Project (validated, normalized)
    session = jupybox.compose.Session(project)                 # + the runtime, progress on stderr
    jupybox.compose.up(session)                                # networks, volumes, containers (detached)
    jupybox.compose.down(session, volumes=True)

The model (reading and checking a project, no containers involved):

    yamlfile.py       YAML 1.2 with the line of every key, limits, !reset / !override
    interpolation.py  ${VAR:-default} and friends, exactly as the spec; typed casts
    envfile.py        .env / env_file (python-dotenv's parser, compose's interpolation)
    merge.py          -f a -f b: the spec's merge rules, unique items
    schema.py         the compose spec's JSON schema (compose-spec.json, vendored) via jsonschema
    canonical.py      short syntax -> long syntax (ports, volumes, depends_on, ...)
    normalize.py      implicit defaults, names, absolute paths, typed values
    validate.py       references, cycles, port clashes: one line with file:line
    graph.py          dependency order
    loader.py         files, environment, name, profiles -> Project
    project.py        the Project

Running it, over the public Python API (``jupybox.create``, ``Container``, networks, volumes):

    support.py        what jupybox cannot honour, refused (file:line) before anything starts
    convert.py        a service -> jupybox.create() options (labels, mounts, ports, limits, ...)
    plan.py           up as ordered steps: networks, volumes, images, containers, starts, waits
    runtime.py        what the steps do; the project's containers found by their labels
    actions.py        the verbs that change things: up, down, start, stop, restart, exec, run, build, ...
    views.py          ps, top, images as rows; published addresses
    logs.py           prefixed, coloured, followed logs
"""

from __future__ import annotations

from .errors import ComposeError
from .loader import load
from .project import Project


def __getattr__(name: str):
    if name in ("Session", "up", "down", "start", "stop", "restart", "run", "exec_"):
        from . import actions

        return getattr(actions, name)
    raise AttributeError(name)


__all__ = ["ComposeError", "Project", "Session", "load", "up", "down", "start", "stop", "restart", "run", "exec_"]
