"""Safe, fast application of an OCI layer tar to a directory usable as an overlayfs lower dir.

One pass over the blob: a producer thread decompresses and hashes it (:mod:`.layerstream`); the
main thread parses the tar headers (forward-only, never seeking back; :mod:`.tarheader` for
speed) and applies each member with the filter of :mod:`.extractor` (what is kept, what is
refused, OCI whiteouts, root and rootless stores), never ``TarFile.extract``.

:func:`unpack_layer` extracts into a fresh directory of ``tmp_dir`` named after this process (see
:mod:`.scratch`: a cleanup never takes it while this process lives) and commits it with one
``rename``; on any error the partial directory is removed. File data is not fsync'ed (like
docker's overlay2 and GNU tar): layer directories are derived from blobs and can be re-created.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from dataclasses import dataclass

from ..errors import DigestMismatch, JupyboxError, StoreError
from . import markers, scratch
from .extractor import Extractor
from .layerstream import Pump, Reader, detect_compression
from .nospace import NoSpace, is_no_space
from .tarheader import FastTarInfo

log = logging.getLogger(__name__)


@dataclass
class LayerInfo:
    """What one pass over a layer blob found."""

    diff_id: str  # sha256 of the uncompressed tar
    digest: str  # sha256 of the blob as read (compressed)
    size: int  # bytes of the blob as read
    tar_size: int  # bytes of the uncompressed tar
    compression: str  # none | gzip | zstd | bzip2 | xz
    entries: int = 0  # tar members seen
    path: str | None = None  # the committed directory (unpack_layer)
    existed: bool = False  # another process committed the same layer first
    skipped_devices: int = 0  # device nodes (and hard links to them) left out: rootless store


def _read_head(f, n: int = 6) -> bytes:
    head = b""
    while len(head) < n:
        b = f.read(n - len(head))
        if not b:
            break
        head += b
    return head


def _is_zero(b: bytes) -> bool:
    return not b.strip(b"\0")


def extract_layer(src, target_dir: str | os.PathLike, *, expected_diff_id: str | None = None,
                  expected_digest: str | None = None, expected_size: int | None = None,
                  tee=None) -> LayerInfo:
    """Extract the layer ``src`` (a path or a binary file object; plain/gzip/zstd/bzip2/xz) into
    the existing, empty directory ``target_dir``. ``tee(chunk)`` is called with every
    uncompressed chunk (in the producer thread). Verifies ``expected_diff_id`` (uncompressed
    sha256), ``expected_digest``/``expected_size`` (the blob as read). Raises UnsafeArchive,
    DigestMismatch or StoreError; the caller removes ``target_dir`` on error."""
    own = not hasattr(src, "read")
    f = open(src, "rb", buffering=0) if own else src
    try:
        head = _read_head(f)
        kind = detect_compression(head)
        pump = Pump(f, head, kind, tee)
        reader = Reader(pump)
        ex = Extractor(os.fspath(target_dir))
        pump.start()
        try:
            try:
                tar = tarfile.TarFile(fileobj=reader, mode="r", tarinfo=FastTarInfo)
            except tarfile.ReadError as e:
                if str(e) != "empty file":
                    raise StoreError(f"invalid layer: not a tar archive ({e})") from None
                tar = None
            if tar is not None:
                next_member = tar.next
                members = tar.members
                apply = ex.apply
                while True:
                    try:
                        ti = next_member()
                    except tarfile.TarError as e:
                        raise StoreError(f"invalid layer: {e}") from None
                    if ti is None:
                        break
                    try:
                        apply(ti, reader)
                    except JupyboxError:
                        raise
                    except OSError as e:
                        kind_of = NoSpace if is_no_space(e) else StoreError
                        raise kind_of(f"layer: member {ti.name!r}: {e.strerror or e}") from None
                    members.clear()
                lb = reader.last_block
                if lb is not None and lb and not (len(lb) == 512 and _is_zero(lb)):
                    if len(lb) < 512:
                        raise StoreError("truncated layer: unexpected end of tar headers")
                    raise StoreError(f"invalid layer: bad tar header at offset {reader.tell() - 512}")
            reader.drain()
        finally:
            pump.stop.set()
            pump.join()
        info = LayerInfo(pump.diff_id, pump.raw.digest, pump.raw.size, pump.tar_size, kind, ex.entries,
                         skipped_devices=ex.skipped_devices)
        if ex.skipped_devices:
            log.debug("layer %s: %d device node(s) left out (rootless store: no CAP_MKNOD), e.g. %s",
                      info.diff_id[:19], ex.skipped_devices, ", ".join(ex.skipped_log))
        if expected_digest is not None and info.digest != expected_digest:
            raise DigestMismatch(f"layer blob digest mismatch: expected {expected_digest}, got {info.digest}")
        if expected_size is not None and info.size != expected_size:
            raise DigestMismatch(f"layer blob size mismatch: expected {expected_size}, got {info.size}")
        if expected_diff_id is not None and info.diff_id != expected_diff_id:
            raise DigestMismatch(f"layer diff_id mismatch: expected {expected_diff_id}, got {info.diff_id}")
        try:
            ex.finish()
        except OSError as e:
            raise StoreError(f"layer: finishing directories: {e}") from None
        return info
    finally:
        if own:
            f.close()


def remove_tree(path: str | os.PathLike) -> None:
    """rmtree that also copes with directories left without write permission, and (not root) with
    files a build step wrote as a sub-id (see ``linux.userns.rmtree``)."""
    scratch.remove_tree(path)


def unpack_layer(src, dest, *, tmp_dir: str | os.PathLike | None = None,
                 expected_diff_id: str | None = None, expected_digest: str | None = None,
                 expected_size: int | None = None, tee=None) -> LayerInfo:
    """Extract ``src`` into a fresh directory under ``tmp_dir`` (default: dest's parent) and commit
    it as ``dest`` with one rename. ``dest`` may be a callable ``(LayerInfo) -> path`` to name the
    directory after what was found (its diff_id). If the destination already exists (another
    process won the race), the new copy is discarded and ``info.existed`` is True. On error
    nothing is left behind."""
    if callable(dest):
        if tmp_dir is None:
            raise ValueError("unpack_layer: tmp_dir is required when dest is a callable")
    else:
        dest = os.fspath(dest)
    tmp_dir = os.fspath(tmp_dir) if tmp_dir is not None else os.path.dirname(dest)
    work = scratch.new_dir(tmp_dir, "layer", 0o755)
    try:
        os.chmod(work, 0o755)  # whatever the umask
        info = extract_layer(src, work, expected_diff_id=expected_diff_id,
                             expected_digest=expected_digest, expected_size=expected_size, tee=tee)
        if callable(dest):
            dest = os.fspath(dest(info))
        root_mode = None
        if not markers.privileged():
            # moving a directory to another parent updates its "..": without CAP_DAC_OVERRIDE that
            # needs write permission on it, which a layer root of mode 0555 (Fedora's /) lacks
            root_mode = stat.S_IMODE(os.lstat(work).st_mode)
            if not root_mode & stat.S_IWUSR:
                os.chmod(work, root_mode | stat.S_IWUSR)
            else:
                root_mode = None
        try:
            os.rename(work, dest)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise StoreError(f"cannot commit layer {dest}: {e.strerror}") from None
            remove_tree(work)  # another process committed the same layer first
            info.existed = True
        else:
            if root_mode is not None:
                os.chmod(dest, root_mode)
        info.path = dest
        try:
            dfd = os.open(os.path.dirname(dest), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return info
    except BaseException:
        if os.path.lexists(work):  # nothing half-unpacked stays behind
            remove_tree(work)
        raise
