"""Resolve a container path inside its root the way the container would see it.

An image may hold hostile symlinks (``/proc -> /etc``, ``/data -> ../../..``); a mount target
computed with a plain ``os.path.join`` would then land on the host. Like runc's use of
filepath-securejoin, every symlink is followed *relative to the root* and ``..`` never climbs
above it. The container has not started yet, so nothing can race us here.
"""

from __future__ import annotations

import os
import stat

_MAX_LINKS = 255


def secure_join(root: str, path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise OSError(40, f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
        else:
            resolved.append(part)
    return os.path.join(root, *resolved)


def ensure_path(root: str, path: str, is_dir: bool = True, mode: int = 0o755) -> str:
    """secure_join, then create the target (a directory, or an empty file) if it is missing."""
    target = secure_join(root, path)
    if is_dir:
        os.makedirs(target, mode=mode, exist_ok=True)
    else:
        parent = os.path.dirname(target)
        # the parent may itself contain symlinks created by nothing: it was joined already
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    return target
