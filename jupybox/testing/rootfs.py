"""Small root filesystems for tests and benchmarks.

``busybox_rootfs`` builds a ~2 MB rootfs from Debian's busybox-static in a few
milliseconds; ``busybox_tarball`` caches it as a deterministic ``.tar.gz``
(fixed mtimes and owners, so its digest is stable across runs and machines);
``debian_tarball`` caches a real Debian (``mmdebstrap --variant=minbase``).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

BUSYBOX = "/bin/busybox"
# Bump when the rootfs layout below changes, so cached tarballs are rebuilt.
_LAYOUT_VERSION = "1"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
user:x:1000:
nogroup:x:65534:
"""
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

_DIRS = {  # path: mode
    "bin": 0o755,
    "sbin": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "etc": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "dev": 0o755,
    "tmp": 0o1777,
    "root": 0o700,
    "home": 0o755,
    "home/user": 0o755,
    "var": 0o755,
    "var/tmp": 0o1777,
    "run": 0o755,
}
_OWNED = {"home/user": (1000, 1000)}


def _is_static_elf(path: str) -> bool:
    """True when the ELF file has no PT_INTERP program header (no dynamic loader needed)."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if ident[:4] != b"\x7fELF":
            return False
        is64 = ident[4] == 2
        endian = "<" if ident[5] == 1 else ">"
        if is64:
            f.seek(0x20)
            (phoff,) = struct.unpack(endian + "Q", f.read(8))
            f.seek(0x36)
        else:
            f.seek(0x1C)
            (phoff,) = struct.unpack(endian + "I", f.read(4))
            f.seek(0x2A)
        phentsize, phnum = struct.unpack(endian + "HH", f.read(4))
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type,) = struct.unpack(endian + "I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return False
    return True


def _busybox_binary(busybox: str | os.PathLike | None) -> str:
    path = str(busybox or BUSYBOX)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: apt-get install busybox-static")
    if not _is_static_elf(path):
        raise RuntimeError(f"{path} is dynamically linked: install busybox-static (not busybox)")
    return path


def _applets(busybox: str) -> list[str]:
    """Install paths relative to / ('bin/sh', 'usr/bin/awk', ...)."""
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return [line.strip().lstrip("/") for line in out.stdout.splitlines() if line.strip()]
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    return ["bin/" + line.strip() for line in out.stdout.splitlines() if line.strip()]


def busybox_rootfs(dest: str | os.PathLike, busybox: str | os.PathLike | None = None) -> Path:
    """Make a busybox rootfs in ``dest`` (created if missing) and return it.

    /bin/busybox plus a relative symlink for every applet (``bin/sh -> busybox``,
    ``usr/bin/awk -> ../../bin/busybox``), /etc/passwd with root, user (1000) and
    nobody (65534), /etc/group, /etc/hosts, and the usual empty directories.
    """
    bb = _busybox_binary(busybox)
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for rel, mode in _DIRS.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, mode)
        if rel in _OWNED and os.geteuid() == 0:
            os.chown(d, *_OWNED[rel])
    target = root / "bin" / "busybox"
    shutil.copyfile(bb, target)
    os.chmod(target, 0o755)
    for rel in _applets(bb):
        if rel == "bin/busybox":
            continue
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        rel_target = os.path.relpath(target, link.parent)
        if link.is_symlink() or link.exists():
            continue
        os.symlink(rel_target, link)
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("hosts", HOSTS), ("hostname", "busybox\n")):
        (root / "etc" / name).write_text(text)
        os.chmod(root / "etc" / name, 0o644)
    return root


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (so two processes don't build the same artefact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uname = info.gname = ""
    owner = _OWNED.get(info.name.rstrip("/"))
    info.uid, info.gid = owner if owner else (0, 0)
    return info


def write_tarball(src: str | os.PathLike, out: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``src``'s contents (not ``src`` itself) to a deterministic tar(.gz) at ``out``.

    Entries are sorted, owned by 0:0 (``home/user`` by 1000:1000), mtime 0; the
    gzip header carries no timestamp. Entry names have no leading ``./``.
    """
    src = Path(src)
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src)
        for n in sorted(dirnames + filenames):
            names.append(n if rel == "." else f"{rel}/{n}")
    names.sort()
    raw = open(out, "wb")
    try:
        fileobj = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) if compress else raw
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                tar.add(src / name, arcname=name, recursive=False, filter=_normalize)
        if compress:
            fileobj.close()
    finally:
        raw.close()
    return Path(out)


def busybox_tarball(cache_dir: str | os.PathLike, busybox: str | os.PathLike | None = None) -> Path:
    """A cached gzip tarball of :func:`busybox_rootfs`; built once, atomically.

    The file name carries a digest of the busybox binary and the layout version,
    so upgrading busybox-static gives a new tarball; an existing one is returned
    untouched (same path, same mtime).
    """
    bb = _busybox_binary(busybox)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256((_file_digest(bb) + _LAYOUT_VERSION).encode()).hexdigest()[:16]
    out = cache / f"busybox-rootfs-{key}.tar.gz"
    if out.exists():
        return out
    with _locked(cache / ".busybox.lock"):
        if out.exists():
            return out
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-busybox-", dir=cache))
        try:
            rootfs = busybox_rootfs(tmp / "rootfs", bb)
            part = tmp / "out.tar.gz"
            write_tarball(rootfs, part)
            os.replace(part, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def debian_tarball(
    cache_dir: str | os.PathLike,
    include: Iterable[str] = ("python3",),
    suite: str = "bookworm",
    variant: str = "minbase",
    timeout: float = 900,
) -> Path | None:
    """A cached ``mmdebstrap --variant=minbase --include=... SUITE OUT.tar`` (uncompressed tar).

    Returns None when mmdebstrap is not installed. Takes ~30-50 s the first time
    (needs the Debian mirror); later calls return the cached file. Raises
    RuntimeError with the end of mmdebstrap's log when it fails.
    """
    if shutil.which("mmdebstrap") is None:
        return None
    include = sorted(set(include))
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    tag = "-".join([suite, variant] + include) if include else f"{suite}-{variant}"
    tag = "".join(c if c.isalnum() or c in "-._" else "_" for c in tag)
    out = cache / f"debian-{tag}.tar"
    if out.exists():
        return out
    with _locked(cache / f".debian-{tag}.lock"):
        if out.exists():
            return out
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-debian-", dir=cache))
        try:
            part = tmp / "rootfs.tar"  # mmdebstrap picks the format from the extension
            cmd = ["mmdebstrap", f"--variant={variant}"]
            if include:
                cmd.append("--include=" + ",".join(include))
            cmd += [suite, str(part)]
            log = tmp / "mmdebstrap.log"
            with open(log, "wb") as logf:
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, timeout=timeout)
            if proc.returncode != 0 or not part.exists():
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
            os.replace(part, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
