"""Helpers for the archive tests: images made by hand (tars built with tarfile), archives laid out
as other tools write them, and the tools themselves (skopeo)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_image(layers: list[dict], *, compress=True, label="x"):
    tars = [layer_tar(f) for f in layers]
    blobs = [(gzip.compress(t, 1, mtime=0) if compress else t, OCI_LAYER_GZIP if compress else OCI_LAYER)
             for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/sh"], "Labels": {"l": label}},
                         "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]}},
                        separators=(",", ":")).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": mt, "digest": sha(b), "size": len(b)} for b, mt in blobs]},
                          separators=(",", ":")).encode()
    return manifest, config, blobs, tars


def put(store, image, refs):
    manifest, config, blobs, _ = image
    for b, mt in blobs:
        store.write_blob(b, media_type=mt)
    store.write_blob(config, media_type=OCI_CONFIG)
    store.write_blob(manifest, media_type=OCI_MANIFEST)
    return store.add_image(sha(manifest), refs)


def write_oci_layout(dest: Path, images: dict) -> Path:
    (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "manifests": []}
    for tag, (manifest, config, blobs, _) in images.items():
        for b in [manifest, config] + [b for b, _ in blobs]:
            (dest / "blobs" / "sha256" / sha(b)[7:]).write_bytes(b)
        index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": sha(manifest), "size": len(manifest),
                                   "annotations": {"org.opencontainers.image.ref.name": tag}})
    (dest / "index.json").write_text(json.dumps(index))
    return dest


def tar_of(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """(name, data, symlink target) -> tar bytes (data None + target None = a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, target in members:
            ti = tarfile.TarInfo(name)
            if target is not None:
                ti.type, ti.linkname = tarfile.SYMTYPE, target
                tf.addfile(ti)
            elif data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def skopeo(*args: str) -> subprocess.CompletedProcess:
    policy = Path(os.environ.get("TMPDIR", "/tmp")) / "jupybox-skopeo-policy.json"
    if not policy.exists():
        policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    r = subprocess.run(["skopeo", "--policy", str(policy), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"skopeo {' '.join(args)}: {r.stderr.strip()[-2000:]}"
    return r


def members_of(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


def rootfs_file(store, image, rel: str) -> bytes:
    """A file as seen through the image's unpacked layers (top layer wins)."""
    dirs = image.layer_dirs() if hasattr(image, "layer_dirs") else []
    for d in reversed(list(dirs)):
        p = Path(d) / rel
        if p.exists():
            return p.read_bytes()
    raise FileNotFoundError(rel)


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


IMG_A = make_image([{"etc/": None, "etc/hello": b"A1\n"}, {"etc/hello": b"A2\n", "big": os.urandom(200_000)}],
                   label="a")
IMG_B = make_image([{"etc/": None, "etc/hello": b"A1\n"}, {"b": b"only in B\n"}], label="b",
                   compress=False)  # shares layer 0 with A (gzipped there, plain here)


def ids(images):
    return sorted(i.id for i in images)


def names(images):
    return sorted(r for i in images for r in i.refs)
