"""Hand-made images for the registry tests: layers, OCI layouts, skopeo."""

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

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes | None]) -> bytes:
    """A layer tar: ``name -> content`` (None makes a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if data is None:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            else:
                ti.size = len(data)
                ti.mode = 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def make_image(layers: list[dict[str, bytes | None]], *, compress=True, cmd=("/bin/sh",), arch="amd64"):
    """(manifest bytes, config bytes, [(blob, media type)]) for an image of these layers."""
    tars = [layer_tar(files) for files in layers]
    blobs = [(gz(t) if compress else t, OCI_LAYER_GZIP if compress else OCI_LAYER) for t in tars]
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(tars))],
    }, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": mt, "digest": sha(b), "size": len(b)} for b, mt in blobs],
    }, separators=(",", ":")).encode()
    return manifest, config, blobs


def write_oci_layout(dest: Path, images: dict[str, tuple]) -> Path:
    """An OCI layout directory with ``tag -> make_image(...)`` entries."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "manifests": []}
    for tag, (manifest, config, layer_blobs) in images.items():
        for b in [manifest, config] + [b for b, _ in layer_blobs]:
            (blobs / sha(b)[7:]).write_bytes(b)
        index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": sha(manifest), "size": len(manifest),
                                   "annotations": {"org.opencontainers.image.ref.name": tag}})
    (dest / "index.json").write_text(json.dumps(index))
    return dest


def skopeo(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    # skopeo needs a policy; give it an insecure-accept-anything one of its own
    policy = Path(os.environ.get("TMPDIR", "/tmp")) / "jupybox-skopeo-policy.json"
    if not policy.exists():
        policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    cmd = ["skopeo", "--policy", str(policy), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
