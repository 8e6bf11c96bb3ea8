"""What ADD reads beyond plain files: local tar archives (detected by content, extracted with the
store's safe layer extractor) and http(s) URLs (downloaded into the store's tmp/, ``--checksum``
verified). Git sources (BuildKit clones them) are recognised as BuildKit recognises them, and
refused: jupybox runs no git client."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import tempfile
import time
import urllib.parse

_SCP_LIKE = re.compile(r"^[A-Za-z0-9_.+-]+@[A-Za-z0-9_.-]+:")


def is_git_url(src: str) -> bool:
    """``git://``, ``ssh://``, ``user@host:path``, or an http(s) URL whose path ends in ``.git``
    (BuildKit's dfgitutil.ParseGitRef)."""
    if src.startswith(("git://", "ssh://", "git+ssh://", "github.com/")) or _SCP_LIKE.match(src):
        return True
    if src.startswith(("http://", "https://")):
        return urllib.parse.urlsplit(src).path.endswith(".git")
    return False


def is_archive(path: str) -> bool:
    """A tar archive, plain or compressed (detected by content, as docker does)."""
    from ..image.layer import detect_compression

    try:
        with open(path, "rb") as f:
            head = f.read(8)
            kind = detect_compression(head)
            f.seek(0)
            if kind == "none":
                block = f.read(512)
            elif kind == "gzip":
                import gzip

                try:
                    block = gzip.GzipFile(fileobj=f).read(512)
                except (OSError, EOFError):
                    return False
            elif kind == "bzip2":
                import bz2

                try:
                    block = bz2.BZ2File(f).read(512)
                except (OSError, EOFError):
                    return False
            elif kind == "xz":
                import lzma

                try:
                    block = lzma.LZMAFile(f).read(512)
                except (OSError, EOFError, lzma.LZMAError):
                    return False
            elif kind == "zstd":
                try:
                    import zstandard

                    block = zstandard.ZstdDecompressor().stream_reader(f).read(512)
                except Exception:  # noqa: BLE001
                    return False
            else:
                return False
    except OSError:
        return False
    if len(block) < 512:
        return False
    import tarfile

    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def extract_archive(store, path: str) -> str:
    """Extract an archive (safely, jupybox's layer extractor) into a temporary directory."""
    from ..image.layer import extract_layer

    store.tmp.mkdir(parents=True, exist_ok=True)
    tree = tempfile.mkdtemp(prefix="layer-add-", dir=store.tmp)
    os.chmod(tree, 0o755)
    try:
        extract_layer(path, tree)
    except BaseException:
        from ..image.layer import remove_tree

        remove_tree(tree)
        raise
    return tree


def download(url: str, store, checksum_spec: str | None = None) -> tuple[str, str, float, str]:
    """(temp file, file name, mtime, sha256 hex) of an ADD URL."""
    import email.utils
    import urllib.parse
    import urllib.request

    store.tmp.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="layer-url-", dir=store.tmp)
    h = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "jupybox-build"})
        with urllib.request.urlopen(req, timeout=60) as r, os.fdopen(fd, "wb") as out:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
            lm = r.headers.get("Last-Modified")
            final = r.geturl()
    except BaseException:
        os.unlink(tmp)
        raise
    mtime = time.time()
    if lm:
        try:
            mtime = email.utils.parsedate_to_datetime(lm).timestamp()
        except (TypeError, ValueError):
            pass
    digest = h.hexdigest()
    if checksum_spec:
        algo, _, want = checksum_spec.partition(":")
        if algo != "sha256" or want != digest:
            os.unlink(tmp)
            raise ValueError(f"digest mismatch for {url}: expected {checksum_spec}, got sha256:{digest}")
    name = posixpath.basename(urllib.parse.urlparse(final).path) or posixpath.basename(
        urllib.parse.urlparse(url).path) or "download"
    return tmp, name, mtime, digest
