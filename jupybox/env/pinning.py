"""Locks: what pip installed in an image, pinned to exact versions and sha256 hashes.

A binder build runs ``pip install --report`` (pip >= 22.2), which says, for every distribution it
installed, the version and the hash of the archive it came from (for a wheel pip built from an
sdist, the sdist's). :func:`lock_text` turns those reports into a requirements file in pip's
hash-checking mode::

    # jupybox lock: base debian-pip:latest@sha256:3f...
    # jupybox lock: inputs sha256:9a...   (requirements.txt, environment.yml's pip: list)
    idna==3.7 \\
        --hash=sha256:82fee1fc...
    tabulate==0.9.0 \\
        --hash=sha256:0095b12b...

Built again with ``--lock``, pip installs exactly these files (``--no-deps --require-hashes``: no
resolution, a changed archive is refused), on the base image the lock names by digest. A
distribution pip reports without a hash (a local directory, a VCS checkout) makes a lock of exact
versions only, said in a warning: pip's hash-checking mode is all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import re

from .binderfiles import BinderFileError

HEADER = "# jupybox lock:"
MAX_REPORT = 16 << 20


def parse_report(data: bytes, where: str) -> list[dict]:
    """``[{name, version, hash or None, url}]`` from a ``pip install --report`` JSON document."""
    if len(data) > MAX_REPORT:
        raise BinderFileError(f"{where}: pip's report is larger than {MAX_REPORT} bytes")
    try:
        doc = json.loads(data)
        items = doc["install"]
        if not isinstance(items, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise BinderFileError(f"{where}: not a pip install report") from None
    out = []
    for item in items:
        meta = item.get("metadata") or {}
        info = item.get("download_info") or {}
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        digest = hashes.get("sha256")
        if digest is None:
            legacy = (info.get("archive_info") or {}).get("hash") or ""
            if legacy.startswith("sha256="):
                digest = legacy[7:]
        name, version = meta.get("name"), meta.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise BinderFileError(f"{where}: an entry without a name or version")
        out.append({"name": name, "version": version, "hash": digest, "url": info.get("url", "")})
    return out


def lock_text(installed: list[dict], base_ref: str, inputs_digest: str) -> tuple[str, list[str]]:
    """(the lock file's text, warnings)."""
    from packaging.utils import canonicalize_name

    by_name: dict[str, dict] = {}
    for d in installed:  # a later report (the requirements) wins over an earlier one (the kernel)
        by_name[canonicalize_name(d["name"])] = d
    missing = sorted(n for n, d in by_name.items() if not d["hash"])
    warnings = []
    if missing:
        warnings.append(f"no hash from pip for {', '.join(missing)} (not from a package index): the lock pins "
                        "exact versions only")
    lines = [f"{HEADER} base {base_ref}", f"{HEADER} inputs {inputs_digest}"]
    for name in sorted(by_name):
        d = by_name[name]
        if d["hash"] and not missing:
            lines.append(f"{name}=={d['version']} \\\n    --hash=sha256:{d['hash']}")
        else:
            lines.append(f"{name}=={d['version']}")
    return "\n".join(lines) + "\n", warnings


def read_header(text: str) -> dict[str, str]:
    """The ``# jupybox lock: KEY VALUE`` lines of a lock."""
    out = {}
    for line in text.splitlines():
        if line.startswith(HEADER):
            key, _, value = line[len(HEADER):].strip().partition(" ")
            out[key] = value.strip()
    return out


def check_lock(text: str, shown: str) -> None:
    """A lock must pin every requirement to one version (``==``), hashed or not (all or none)."""
    from .binderfiles import _logical_lines

    for i, line in _logical_lines(text.splitlines()):
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\s;=]+(\s+--hash=\S+)*$", line):
            raise BinderFileError(f"{shown}:{i}: not a pinned requirement (NAME==VERSION [--hash=...]): {line!r}")


def inputs_digest(parts: list[bytes]) -> str:
    """What a lock was made from (the requirement files, environment.yml's pip: list), as one digest."""
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return "sha256:" + h.hexdigest()
