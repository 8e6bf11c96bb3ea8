"""``docker import``: a root filesystem tarball becomes a one-layer image.

One pass over the input: the producer thread of :mod:`.layer` decompresses it (plain, gzip, zstd,
bzip2, xz: detected by magic bytes), hashes the tar (the diff_id) and hands every chunk both to
the extractor (the layer directory is ready to run when the import returns) and to the blob file.

The layer blob is stored **uncompressed** by default (``application/vnd.oci.image.layer.v1.tar``):
its digest *is* the diff_id (no second hash), and storing costs a plain write instead of deflate
at ~48 MB/s (gzip level 1: ~4.7 s for a 224 MB rootfs, which would dominate the import). Disk
is the price (the tar next to its unpacked directory); a push can compress on the way out.
``compression="gzip"`` (level 1) or ``"zstd"`` (level 3, also fast) store a compressed blob
instead, compressing in the producer thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shlex
import sys
import zlib

from ..errors import StoreError, UsageError
from . import gc
from .host import host_architecture
from .model import Image, now_rfc3339
from .nospace import reported_as
from .reference import parse_reference

CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
                       "VOLUME", "WORKDIR")
_PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def _bad(line: str, why: str) -> UsageError:
    return UsageError(f"invalid change {line!r}: {why}")


def _exec_or_shell(rest: str) -> list[str]:
    s = rest.strip()
    if s.startswith("["):
        try:
            v = json.loads(s)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
    return ["/bin/sh", "-c", s]


def _pairs(line: str, rest: str) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` or the legacy ``K value with spaces``."""
    first = rest.split(None, 1)[0]
    if "=" not in first:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise _bad(line, f"{first} needs a value (K=V or K V)")
        return [(parts[0], parts[1].strip())]
    try:
        tokens = shlex.split(rest)
    except ValueError as e:
        raise _bad(line, str(e)) from None
    out = []
    for t in tokens:
        k, eq, v = t.partition("=")
        if not eq or not k:
            raise _bad(line, f"expected KEY=VALUE, got {t!r}")
        out.append((k, v))
    return out


def parse_changes(changes, base: dict | None = None) -> dict:
    """Apply Dockerfile-like lines (``CMD ["sh"]``, ``ENV K=V``, ``WORKDIR /x``, ``USER u``,
    ``LABEL k=v``, ``EXPOSE 80/tcp``, ``ENTRYPOINT``, ``VOLUME``, ``STOPSIGNAL``, ``ONBUILD``)
    to an image config's ``config`` section; returns the new section. Raises UsageError."""
    cfg = json.loads(json.dumps(base or {}))
    if isinstance(changes, str):
        changes = [changes]
    for raw in changes or []:
        for line in str(raw).splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            instr = parts[0].upper()
            rest = parts[1].strip() if len(parts) > 1 else ""
            if instr not in CHANGE_INSTRUCTIONS:
                raise _bad(line, f"{parts[0]} is not a valid change command "
                                 f"({', '.join(CHANGE_INSTRUCTIONS)})")
            if not rest:
                raise _bad(line, f"{instr} requires an argument")
            if instr == "CMD":
                cfg["Cmd"] = _exec_or_shell(rest)
            elif instr == "ENTRYPOINT":
                cfg["Entrypoint"] = _exec_or_shell(rest)
            elif instr == "ENV":
                env = list(cfg.get("Env") or [])
                for k, v in _pairs(line, rest):
                    env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
                cfg["Env"] = env
            elif instr == "LABEL":
                labels = dict(cfg.get("Labels") or {})
                labels.update(_pairs(line, rest))
                cfg["Labels"] = labels
            elif instr == "EXPOSE":
                ports = dict(cfg.get("ExposedPorts") or {})
                for tok in rest.split():
                    m = _PORT_RE.match(tok)
                    if not m:
                        raise _bad(line, f"invalid port {tok!r}")
                    lo = int(m.group(1))
                    hi = int(m.group(2) or lo)
                    proto = (m.group(3) or "tcp").lower()
                    if not (0 < lo <= hi <= 65535):
                        raise _bad(line, f"invalid port {tok!r}")
                    for p in range(lo, hi + 1):
                        ports[f"{p}/{proto}"] = {}
                cfg["ExposedPorts"] = ports
            elif instr == "VOLUME":
                vols = dict(cfg.get("Volumes") or {})
                paths = _exec_or_shell(rest)
                paths = rest.split() if paths[:2] == ["/bin/sh", "-c"] else paths
                for p in paths:
                    vols[p] = {}
                cfg["Volumes"] = vols
            elif instr == "WORKDIR":
                w = rest
                if not w.startswith("/"):
                    w = posixpath.join(cfg.get("WorkingDir") or "/", w)
                cfg["WorkingDir"] = posixpath.normpath(w)
            elif instr == "USER":
                cfg["User"] = rest
            elif instr == "STOPSIGNAL":
                cfg["StopSignal"] = rest
            elif instr == "ONBUILD":
                cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest]
    return cfg


class _BlobSink:
    """Receives the uncompressed tar chunks (in the producer thread) and writes the blob file."""

    def __init__(self, fd: int, compression: str):
        self.fd = fd
        self.compression = compression
        self.h = hashlib.sha256() if compression != "none" else None
        self.size = 0
        if compression == "gzip":
            self.c = zlib.compressobj(1, zlib.DEFLATED, 31)
        elif compression == "zstd":
            try:
                import zstandard
            except ImportError:
                raise StoreError("compression='zstd' needs the 'zstandard' Python package") from None
            self.c = zstandard.ZstdCompressor(level=3).compressobj()
        elif compression == "none":
            self.c = None
        else:
            raise UsageError(f"unknown compression {compression!r} (none, gzip, zstd)")

    def _write(self, data) -> None:
        if not data:
            return
        if self.h is not None:
            self.h.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def __call__(self, chunk) -> None:
        self._write(self.c.compress(chunk) if self.c is not None else chunk)

    def finish(self) -> None:
        if self.c is not None:
            self._write(self.c.flush())

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


def import_rootfs(store, source, ref: str | None = None, changes=(), message: str | None = None, *,
                  compression: str = "none") -> Image:
    """Import a rootfs tarball (a path or a binary file object such as ``sys.stdin.buffer``) as a
    one-layer image named ``ref`` (optional). ``changes`` are Dockerfile-like lines (see
    :func:`parse_changes`); ``message`` becomes the history comment (default ``Imported from X``)."""
    cfg = parse_changes(changes)  # validate everything before reading the input
    refs = [str(parse_reference(ref))] if ref else []
    if isinstance(source, str) and source == "-":
        source = sys.stdin.buffer
    if hasattr(source, "read"):
        src_name = getattr(source, "name", "-")
        src_name = src_name if isinstance(src_name, str) and not src_name.startswith("<") else "-"
    else:
        src_name = os.fspath(source)
        if not os.path.exists(src_name):
            raise UsageError(f"open {src_name}: no such file or directory")
    try:
        with reported_as("import"), store.lease():
            return _import(store, source, src_name, refs, cfg, message, compression)
    except BaseException:
        gc.after_failure(store)  # a layer committed before the failure: nothing half-written stays
        raise


def _import(store, source, src_name: str, refs: list[str], cfg: dict, message: str | None, compression: str) -> Image:
    tmp_path, fd = store.tmp_file("import")
    try:
        sink = _BlobSink(fd, compression)
        info = store.layers.unpack(source, tee=sink)
        sink.finish()
        os.fsync(fd)
        blob_digest = info.diff_id if compression == "none" else sink.digest
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        os.close(fd)
        raise
    try:
        store.blobs.adopt(tmp_path, blob_digest, fd)  # closes fd
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    created = now_rfc3339()
    config = {
        "architecture": host_architecture(),
        "os": "linux",
        "created": created,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id]},
        "history": [{"created": created, "created_by": "",
                     "comment": message if message else f"Imported from {src_name}"}],
    }
    if message:
        config["comment"] = message
    return store.create_image(config, [blob_digest], refs)
