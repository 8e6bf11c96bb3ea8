"""Plain file IO on cgroup filesystems (no ctypes).

Every directory creation, removal, read and write of the cgroup layer goes
through this module so that tests can swap ``mkdir``/``rmdir`` for a fake
"kernel" that populates a v2-shaped directory like cgroupfs would.
"""

from __future__ import annotations

import os

from ..errors import CgroupError

UNLIMITED_V1 = 2**62  # v1 reports "unlimited" as PAGE_COUNTER_MAX * PAGE_SIZE (~2**63): anything this big


def mkdir(path: str) -> None:
    os.mkdir(path, 0o755)


def rmdir(path: str) -> None:
    os.rmdir(path)


def read(path: str) -> str:
    """The whole file; OSError (FileNotFoundError for a missing file) propagates."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def read_opt(path: str) -> str | None:
    """The file's text, or None when it does not exist (optional files: memory.peak, memsw...)."""
    try:
        return read(path)
    except FileNotFoundError:
        return None


def read_required(path: str) -> str:
    try:
        return read(path)
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror or e}") from None


def write_raw(path: str, value: str) -> None:
    """Write without O_CREAT: a missing control file is an error (ENOENT), as on cgroupfs."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write(path: str, value: str) -> None:
    try:
        write_raw(path, value)
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror or e}") from None


def parse_int(text: str) -> int:
    return int(text.strip())


def parse_max(text: str) -> int | None:
    """'max' (v2, pids) -> None; a number -> int; v1's huge 'unlimited' numbers -> None."""
    t = text.strip()
    if t == "max":
        return None
    n = int(t)
    if n < 0 or n >= UNLIMITED_V1:
        return None
    return n


def parse_kv(text: str) -> dict[str, int]:
    """Flat keyed files (cpu.stat, memory.events, memory.oom_control): 'key value' lines."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out
