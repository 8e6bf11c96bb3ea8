"""The :class:`Image` object returned by the store (and by :func:`jupybox.image.host.host_image`)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .reference import parse_reference


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_rfc3339(text: str | None) -> datetime | None:
    """``2024-01-02T03:04:05.123456789Z`` → aware datetime (nanoseconds truncated); None if unparsable."""
    if not text or not isinstance(text, str):
        return None
    m = _RFC3339.match(text.strip())
    if not m:
        return None
    base, frac, tz = m.groups()
    s = base + ("." + (frac + "000000")[:6] if frac else "") + ("+00:00" if tz in (None, "Z") else tz)
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


class Image:
    """An image: a config (whose digest is the image id) reached through one or more manifests.

    ``refs`` are the familiar tagged names (``busybox:latest``); ``names`` the full normalized
    ones (``docker.io/library/busybox:latest``). The built-in host image has ``is_host=True``,
    no manifest and no layers.
    """

    def __init__(self, *, id: str, config: dict, manifest: dict | None = None, manifest_digest: str | None = None,
                 names: list[str] | None = None, manifest_digests: list[str] | None = None,
                 is_host: bool = False, store=None):
        self.id = id
        self.config = config
        self.manifest = manifest
        self.manifest_digest = manifest_digest
        self.manifest_digests = list(manifest_digests or ([manifest_digest] if manifest_digest else []))
        self.names = list(names or [])
        self.is_host = is_host
        self._store = store

    # ---- identity

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:12]

    @property
    def refs(self) -> list[str]:
        """Familiar tagged names, e.g. ``['busybox:latest']`` (digest-only names are in repo_digests)."""
        out = []
        for n in self.names:
            r = parse_reference(n, default_tag=None)
            if r.tag is not None and r.digest is None:
                out.append(r.familiar())
        return out

    @property
    def repo_digests(self) -> list[str]:
        """``repo@sha256:...`` for the digest names (a pull registers ``busybox@<manifest digest>``
        next to ``busybox:latest``, as docker's reference store does; local images have none)."""
        out: list[str] = []
        for n in self.names:
            r = parse_reference(n, default_tag=None)
            if r.digest:
                s = f"{r.familiar_name()}@{r.digest}"
                if s not in out:
                    out.append(s)
        return out

    @property
    def name(self) -> str:
        """The first familiar name, or ``<none>:<none>``."""
        refs = self.refs
        return refs[0] if refs else "<none>:<none>"

    # ---- config accessors

    @property
    def _cfg(self) -> dict:
        return self.config.get("config") or {}

    @property
    def created(self) -> str | None:
        return self.config.get("created")

    @property
    def created_at(self) -> datetime | None:
        return parse_rfc3339(self.created)

    @property
    def env(self) -> list[str]:
        return list(self._cfg.get("Env") or [])

    @property
    def env_dict(self) -> dict[str, str]:
        out = {}
        for kv in self.env:
            k, _, v = kv.partition("=")
            out[k] = v
        return out

    @property
    def cmd(self) -> list[str] | None:
        c = self._cfg.get("Cmd")
        return list(c) if c is not None else None

    @property
    def entrypoint(self) -> list[str] | None:
        e = self._cfg.get("Entrypoint")
        return list(e) if e is not None else None

    @property
    def workdir(self) -> str:
        return self._cfg.get("WorkingDir") or ""

    @property
    def user(self) -> str:
        return self._cfg.get("User") or ""

    @property
    def exposed_ports(self) -> dict:
        return dict(self._cfg.get("ExposedPorts") or {})

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._cfg.get("Labels") or {})

    @property
    def volumes(self) -> dict:
        return dict(self._cfg.get("Volumes") or {})

    @property
    def stop_signal(self) -> str | None:
        return self._cfg.get("StopSignal")

    @property
    def architecture(self) -> str:
        return self.config.get("architecture", "")

    @property
    def os(self) -> str:
        return self.config.get("os", "")

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def layers(self) -> list[dict]:
        """The manifest's layer descriptors (mediaType, digest, size), bottom to top."""
        return list((self.manifest or {}).get("layers") or [])

    @property
    def size(self) -> int:
        """Sum of the layer blobs' sizes as stored (compressed for pulled images)."""
        return sum(int(d.get("size", 0)) for d in self.layers)

    # ---- docker-like views

    def inspect(self) -> dict:
        cfg = self._cfg
        return {
            "Id": self.id,
            "RepoTags": self.refs,
            "RepoDigests": [] if self.is_host else self.repo_digests,
            "Parent": "",
            "Comment": next((h.get("comment", "") for h in reversed(self.config.get("history") or [])
                             if h.get("comment")), ""),
            "Created": self.created,
            "Author": self.config.get("author", ""),
            "Config": {
                "Env": self.env,
                "Cmd": self.cmd,
                "Entrypoint": self.entrypoint,
                "WorkingDir": self.workdir,
                "User": self.user,
                "Labels": self.labels or None,
                "ExposedPorts": self.exposed_ports or None,
                "Volumes": cfg.get("Volumes"),
                "StopSignal": cfg.get("StopSignal"),
            },
            "Architecture": self.architecture,
            "Os": self.os,
            "Size": self.size,
            "RootFS": {"Type": "host" if self.is_host else "layers", "Layers": self.diff_ids},
            "Metadata": {"ManifestDigest": self.manifest_digest, "IsHost": self.is_host},
        }

    def history(self) -> list[dict]:
        """Newest first, like ``docker history``: created, created_by, size, empty_layer, comment."""
        layers = self.layers
        out = []
        i = 0
        for h in self.config.get("history") or []:
            empty = bool(h.get("empty_layer"))
            size = 0
            if not empty:
                size = int(layers[i].get("size", 0)) if i < len(layers) else 0
                i += 1
            out.append({
                "created": h.get("created"),
                "created_by": h.get("created_by", ""),
                "size": size,
                "empty_layer": empty,
                "comment": h.get("comment", ""),
            })
        if not out:  # no history recorded: one line per layer
            out = [{"created": self.created, "created_by": "", "size": int(d.get("size", 0)),
                    "empty_layer": False, "comment": ""} for d in layers]
        out.reverse()
        return out

    def layer_dirs(self, relative: bool = False) -> list[str]:
        if self.is_host or self._store is None:
            return []
        return self._store.layer_dirs(self, relative=relative)

    def __repr__(self) -> str:
        return f"<Image {self.short_id} {' '.join(self.refs) or '<none>'}{' host' if self.is_host else ''}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Image) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)
