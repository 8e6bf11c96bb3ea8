"""An image being built (:class:`State`: config + layer descriptors) and a stage being built
(:class:`StageCtx`), with the defaults every stage starts from (PATH, shell, platform ARGs)."""

from __future__ import annotations

import hashlib
import json
import os

from .instructions import Stage

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


def arch() -> str:
    m = os.uname().machine.lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def platform_args() -> dict[str, str]:
    a = arch()
    plat = f"linux/{a}"
    out = {}
    for prefix in ("TARGET", "BUILD"):
        out[prefix + "PLATFORM"] = plat
        out[prefix + "OS"] = "linux"
        out[prefix + "ARCH"] = a
        out[prefix + "VARIANT"] = ""
    return out


def canonical_json(obj) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # bytes of a Dockerfile that is not UTF-8: U+FFFD, as Go's JSON writes them
        from .gostrings import valid_text

        return valid_text(text).encode()


def now_rfc3339() -> str:
    from ..image.model import now_rfc3339 as now

    return now()


class State:
    """An image being built: its config and its layer descriptors (bottom → top)."""

    __slots__ = ("config", "layers", "_id")

    def __init__(self, config: dict, layers: list[dict]):
        self.config = config
        self.layers = layers
        self._id = None

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = "sha256:" + hashlib.sha256(canonical_json(self.config)).hexdigest()
        return self._id

    @property
    def cfg(self) -> dict:
        return self.config.get("config") or {}

    def env(self) -> dict[str, str]:
        out = {}
        for item in self.cfg.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def to_cache(self) -> dict:
        return {"config": self.config, "layers": self.layers}

    def manifest(self) -> tuple[bytes, bytes]:
        from ..image import mediatypes as mt

        cbytes = canonical_json(self.config)
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": self.id, "size": len(cbytes)},
                    "layers": self.layers}
        return cbytes, canonical_json(manifest)


class StageCtx:
    def __init__(self, stage: Stage, state: "State | None", label: str):
        self.stage = stage
        self.state = state
        self.args: dict[str, str | None] = {}  # ARGs in scope (None: declared, unset)
        self.cmd_set = False
        self.total = 0
        self.step = 0
        self.label = label
