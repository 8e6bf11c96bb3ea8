"""Named volumes: ``volumes/<name>/_data`` under the jupybox root, like docker's local driver.

``-v NAME:/path`` creates the volume on first use; its data outlives every container that
mounted it until ``jupybox volume rm``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import Conflict, UsageError, VolumeNotFound
from ..paths import Layout
from .records import check_name
from .state import now_iso, write_json_atomic


@dataclass
class Volume:
    name: str
    path: Path

    @property
    def data(self) -> Path:
        return self.path / "_data"

    def inspect(self) -> dict:
        try:
            meta = json.loads((self.path / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        return {
            "Name": self.name,
            "Driver": "local",
            "Mountpoint": str(self.data),
            "CreatedAt": meta.get("created", ""),
            "Labels": meta.get("labels", {}),
            "Scope": "local",
        }


class Volumes:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.dir = layout.volumes

    def get(self, name: str) -> Volume:
        path = self.dir / name
        if not (path / "_data").is_dir() or "/" in name:
            raise VolumeNotFound(f"no such volume: {name}")
        return Volume(name, path)

    def ensure(self, name: str | None = None, labels: dict | None = None) -> Volume:
        """Create the volume if missing (anonymous when name is None); return it."""
        if name is None:
            name = secrets.token_hex(32)
        try:
            check_name(name)
        except UsageError:
            raise UsageError(f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed") from None
        path = self.dir / name
        if (path / "_data").is_dir():
            return Volume(name, path)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.layout.tmp / f"vol-{name}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "_data").mkdir(parents=True)
        write_json_atomic(tmp / "meta.json", {"created": now_iso(), "labels": labels or {}})
        try:
            os.rename(tmp, path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # created concurrently: use theirs
        return Volume(name, path)

    def list(self) -> list[Volume]:
        if not self.dir.exists():
            return []
        return [Volume(p.name, p) for p in sorted(self.dir.iterdir()) if (p / "_data").is_dir()]

    def remove(self, name: str, users: list[str] = ()) -> None:
        vol = self.get(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use by container(s) {', '.join(u[:12] for u in users)}")
        trash = self.layout.tmp / f"rm-vol-{name}-{secrets.token_hex(4)}"
        os.rename(vol.path, trash)
        from ..linux import userns  # files a rootless container wrote as a sub-id

        userns.rmtree(trash)
