"""A notebook cell's files (its source, its pickled ``-i`` values), kept under the store and owned
by the container that runs them: removed with it (rm, --rm, prune), never left in /tmp where a
kill -9 of the kernel would leave a user's data for anyone to read.

The directory exists before the container (it is a bind mount's source), so its owner until then
is the process that made it (an ``owner`` file with its pid): ``collect`` removes the directories
whose maker is gone and that no container names.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from .state import process_running

LABEL = "jupybox.cell-files"  # a container's label naming its cell directory (under <store>/cells)
OWNER = "owner"


def cells_dir(layout) -> Path:
    return layout.root / "cells"


def make(layout) -> Path:
    """A new private directory for a cell's files; name it in the container's labels with
    ``{LABEL: path.name}`` so that it goes with the container."""
    parent = cells_dir(layout)
    parent.mkdir(mode=0o700, exist_ok=True)
    path = parent / secrets.token_hex(16)
    path.mkdir(mode=0o700)
    try:
        (path / OWNER).write_text(str(os.getpid()))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def _valid(name) -> bool:
    return isinstance(name, str) and len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def remove_for(layout, config: dict) -> None:
    """Remove the cell directory a container's config names (its labels), if any."""
    name = (config.get("spec", {}).get("labels") or {}).get(LABEL)
    if _valid(name):  # a label is user input: never a path
        shutil.rmtree(cells_dir(layout) / name, ignore_errors=True)


def collect(layout, named: set[str]) -> int:
    """Remove the cell directories no container names (``named``) whose maker is gone. Returns
    how many went."""
    parent = cells_dir(layout)
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in entries:
        if name in named:
            continue
        try:
            owner = int((parent / name / OWNER).read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and process_running(owner):
            continue  # its container is being made
        shutil.rmtree(parent / name, ignore_errors=True)
        removed += 1
    return removed
