"""Helpers for the image tests (imported by name: conftest.py puts this directory on sys.path).

Tars are built with tarfile (no binary files in git)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

import pytest

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")


def _overlay_available() -> bool:
    if not IS_ROOT:
        return False
    try:
        with open("/proc/filesystems") as f:
            return "overlay" in f.read()
    except OSError:
        return False


needs_overlay = pytest.mark.skipif(not _overlay_available(), reason="needs root and overlayfs")


def member(name, type=tarfile.REGTYPE, data=b"", mode=None, uid=0, gid=0, linkname="", mtime=1_600_000_000,
           pax=None, devmajor=0, devminor=0, size=None):
    """A (TarInfo, data) pair for make_tar."""
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    ti.linkname = linkname
    ti.devmajor, ti.devminor = devmajor, devminor
    if mode is None:
        mode = 0o755 if type == tarfile.DIRTYPE else 0o644
    ti.mode = mode
    if pax:
        ti.pax_headers = dict(pax)
    if type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        ti.size = len(data) if size is None else size
    return ti, data


def make_tar(members, format=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=format) as t:
        for ti, data in members:
            if ti.size and len(data) == ti.size:
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)  # header only (e.g. an absurd size)
    return buf.getvalue()


def d(name, **kw):
    return member(name, tarfile.DIRTYPE, **kw)


def f(name, data=b"x", **kw):
    return member(name, tarfile.REGTYPE, data=data, **kw)


def sym(name, target, **kw):
    return member(name, tarfile.SYMTYPE, linkname=target, **kw)


def hard(name, target, **kw):
    return member(name, tarfile.LNKTYPE, linkname=target, **kw)


def rootfs_tar(extra=()) -> bytes:
    """A tiny root filesystem."""
    return make_tar([
        d("bin"), f("bin/hello", b"#!/bin/sh\necho hello\n", mode=0o755),
        d("etc"), f("etc/os-release", b"NAME=tiny\n"),
        sym("bin/sh", "hello"),
        *extra,
    ])


def which(cmd):
    return shutil.which(cmd)


def run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)
