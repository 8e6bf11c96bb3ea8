"""Build secrets: ``jupybox build --secret id=x,src=FILE`` (or ``env=VAR``), used by
``RUN --mount=type=secret,id=x``.

A secret is read once when the build starts (at most 500 KiB, BuildKit's limit) and lives only
in this process and, while a RUN uses it, in one file on ``/dev/shm`` (memory, not disk; the
store's tmp/ where there is none) bound read-only into that one container, or in its
environment (``env=``). It is never in a layer, the history, the config or the cache key (as
in BuildKit, changing a secret does not rebuild a cached step).
"""

from __future__ import annotations

import os
import tempfile

from ..errors import UsageError

MAX_SECRET = 500 * 1024


def parse_secret(spec: str, environ=None) -> tuple[str, bytes]:
    """``id=x,src=FILE`` | ``id=x,env=VAR`` | ``id=x,type=env`` | ``id=x`` (the variable x, if
    set) → (id, value)."""
    environ = os.environ if environ is None else environ
    fields: dict[str, str] = {}
    for item in spec.split(","):
        k, eq, v = item.partition("=")
        k = k.strip().lower()
        if not eq:
            raise UsageError(f"invalid secret {spec!r}: {item!r} is not KEY=VALUE")
        if k == "source":
            k = "src"
        if k not in ("id", "src", "env", "type"):
            raise UsageError(f"invalid secret {spec!r}: unexpected key {k!r} (id, src, env, type)")
        fields[k] = v
    sid = fields.get("id")
    kind = fields.get("type")
    if kind not in (None, "file", "env"):
        raise UsageError(f"invalid secret {spec!r}: type must be file or env")
    src = fields.get("src")
    env = fields.get("env")
    if not sid:
        sid = os.path.basename(src) if src else env
    if not sid:
        raise UsageError(f"invalid secret {spec!r}: id= is required")
    if kind == "env" and env is None:
        env = src or sid
        src = None
    if src is None and env is None:
        if kind == "file":
            src = sid
        elif sid in environ:
            env = sid
        else:
            raise UsageError(f"secret {sid}: give src=FILE or env=VARIABLE")
    if env is not None:
        if env not in environ:
            raise UsageError(f"secret {sid}: the environment variable {env} is not set")
        value = os.fsencode(environ[env])
    else:
        try:
            with open(src, "rb") as f:
                value = f.read(MAX_SECRET + 1)
        except OSError as e:
            raise UsageError(f"secret {sid}: {e.strerror}: {src}") from None
    if len(value) > MAX_SECRET:
        raise UsageError(f"secret {sid}: too big, the limit is {MAX_SECRET // 1024} KiB")
    return sid, value


def parse_secrets(specs) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for spec in specs or ():
        sid, value = parse_secret(spec)
        out[sid] = value
    return out


def write_secret(value: bytes, uid: int, gid: int, mode: int, fallback_dir: str) -> str:
    """The secret in a private file (memory-backed when /dev/shm is there); the caller removes it."""
    where = "/dev/shm" if os.access("/dev/shm", os.W_OK) else fallback_dir
    os.makedirs(where, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="jupybox-secret-", dir=where)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(value)
        while view:
            view = view[os.write(fd, view):]
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return path
