"""Helpers for the build tests: write a context, build, read an image's flattened file tree.

Put on sys.path by tests/dockerfile/conftest.py (the suite runs with --import-mode=importlib).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

IS_ROOT = os.geteuid() == 0


def write_tree(root: Path, files: dict) -> Path:
    """``{"a/b.txt": "text" | bytes | ("text", 0o755) | {"link": "target"} | {"dir": 0o700}}``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, spec in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, dict) and "link" in spec:
            if p.is_symlink() or p.exists():
                p.unlink()
            os.symlink(spec["link"], p)
            continue
        if isinstance(spec, dict) and "dir" in spec:
            p.mkdir(exist_ok=True)
            os.chmod(p, spec["dir"])
            continue
        mode = None
        if isinstance(spec, tuple):
            spec, mode = spec
        data = spec.encode() if isinstance(spec, str) else spec
        p.write_bytes(data)
        if mode is not None:
            os.chmod(p, mode)
    return root


@dataclass(frozen=True)
class Node:
    kind: str  # file dir link chr blk fifo hardlink
    mode: int
    uid: int
    gid: int
    target: str = ""
    digest: str = ""
    size: int = 0

    def short(self) -> tuple:
        return (self.kind, oct(self.mode), self.uid, self.gid, self.target, self.digest[:12])


def _open_tar(path: str) -> tarfile.TarFile:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        return tarfile.open(fileobj=gzip.open(path), mode="r|")
    return tarfile.open(path, mode="r|")


def apply_layer(tree: dict[str, Node], blob: str) -> None:
    """Apply one OCI layer tar to a flattened tree (whiteouts, opaque markers, hard links)."""
    opaque_dirs = []
    added: set[str] = set()
    with _open_tar(blob) as tar:
        for ti in tar:
            name = posixpath.normpath(ti.name.lstrip("./").lstrip("/")) if ti.name not in (".", "./") else ""
            if name in ("", "."):
                continue
            parent, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                opaque_dirs.append(parent)
                continue
            if base.startswith(".wh."):
                victim = (parent + "/" if parent else "") + base[4:]
                for k in [k for k in tree if k == victim or k.startswith(victim + "/")]:
                    del tree[k]
                continue
            mode = ti.mode & 0o7777
            if ti.isdir():
                node = Node("dir", mode, ti.uid, ti.gid)
            elif ti.isreg():
                data = tar.extractfile(ti).read()
                node = Node("file", mode, ti.uid, ti.gid, digest=hashlib.sha256(data).hexdigest(), size=len(data))
            elif ti.issym():
                node = Node("link", 0o777, ti.uid, ti.gid, target=ti.linkname)
            elif ti.islnk():
                src = tree.get(posixpath.normpath(ti.linkname.lstrip("./")))
                node = Node("file", mode, ti.uid, ti.gid, digest=src.digest if src else "?",
                            size=src.size if src else 0) if src else Node("hardlink", mode, ti.uid, ti.gid,
                                                                         target=ti.linkname)
            elif ti.ischr():
                node = Node("chr", mode, ti.uid, ti.gid, target=f"{ti.devmajor},{ti.devminor}")
            elif ti.isblk():
                node = Node("blk", mode, ti.uid, ti.gid, target=f"{ti.devmajor},{ti.devminor}")
            elif ti.isfifo():
                node = Node("fifo", mode, ti.uid, ti.gid)
            else:
                continue
            old = tree.get(name)
            if old is not None and old.kind == "dir" and node.kind != "dir":
                for k in [k for k in tree if k.startswith(name + "/")]:
                    del tree[k]
            tree[name] = node
            added.add(name)
    for d in opaque_dirs:
        for k in [k for k in tree if k.startswith(d + "/") and k not in added]:
            del tree[k]


def store_tree(store, image) -> dict[str, Node]:
    tree: dict[str, Node] = {}
    for desc in image.layers:
        apply_layer(tree, str(store.blob_path(desc["digest"])))
    return tree


def oci_tree(layout: Path, name: str | None = None) -> tuple[dict[str, Node], dict]:
    """(flattened tree, config) of an image in an OCI layout directory."""
    idx = json.loads((layout / "index.json").read_text())
    entries = idx["manifests"]
    if name is not None:
        entries = [e for e in entries if (e.get("annotations") or {}).get("org.opencontainers.image.ref.name") == name]
    man = json.loads((layout / "blobs" / "sha256" / entries[0]["digest"][7:]).read_text())
    config = json.loads((layout / "blobs" / "sha256" / man["config"]["digest"][7:]).read_text())
    tree: dict[str, Node] = {}
    for desc in man["layers"]:
        apply_layer(tree, str(layout / "blobs" / "sha256" / desc["digest"][7:]))
    return tree, config


def diff_trees(a: dict[str, Node], b: dict[str, Node], ignore=()) -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if any(k == i or k.startswith(i + "/") for i in ignore):
            continue
        x, y = a.get(k), b.get(k)
        if x is None or y is None or x.short() != y.short():
            out.append(f"{k}: {x.short() if x else None} != {y.short() if y else None}")
    return out


def is_whiteout(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
