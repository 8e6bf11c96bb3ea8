"""Which of three modes this process runs containers in, and why.

- ``root``: every namespace, overlayfs with trusted.* xattrs, cgroups (v1, hybrid or v2).
- ``rootless``: a normal user. Each container gets its own user namespace (the user is root
  inside; a full 65536-id range with /etc/subuid, else the single id), overlayfs mounted inside it
  with ``userxattr`` (kernel >= 5.11) or fuse-overlayfs, cgroups only where delegated (else
  rlimits, and charts from psutil), networks ``none`` and ``host``.
- ``fallback``: no namespace can be made at all (mybinder.org, hardened hosts). Nothing is
  isolated: the magic runs a cell as a plain process with rlimits and says so loudly; the CLI
  refuses ``run`` without ``--no-isolation``.

The cheap facts come from files; whether namespaces can be made is *tried* by a probe process
(``jupybox.linux.probe``), once per process, only where the answer is needed (``jupybox info``,
the magics). ``JUPYBOX_ISOLATION=none`` forces the fallback (never the other way round).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from ..linux.userns import IdMap, current_idmap

ROOT, ROOTLESS, FALLBACK = "root", "rootless", "fallback"


@dataclass
class Mode:
    name: str
    reason: str = ""
    idmap: IdMap | None = None
    overlay: str | None = None  # "overlay", "overlay (userxattr)", "fuse-overlayfs"
    notes: list[str] = field(default_factory=list)

    @property
    def isolated(self) -> bool:
        return self.name != FALLBACK

    def to_dict(self) -> dict:
        d = {"mode": self.name, "isolated": self.isolated}
        if self.reason:
            d["reason"] = self.reason
        if self.idmap is not None:
            d["id_map"] = self.idmap.describe()
        if self.overlay:
            d["overlay"] = self.overlay
        if self.notes:
            d["notes"] = list(self.notes)
        return d


_NAMESPACE_FAILURE = re.compile(r"creating the container's namespaces: \[Errno (\d+)\]")
_NAMESPACE_ERRNOS = {1, 22, 28}  # EPERM (forbidden), EINVAL (not built in), ENOSPC (max_*_namespaces)


def namespaces_refused(e: BaseException) -> bool:
    """Did a launch fail because the kernel refused to create the namespaces (no container can run)?"""
    m = _NAMESPACE_FAILURE.search(str(e))
    return m is not None and int(m.group(1)) in _NAMESPACE_ERRNOS


def kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = platform.release().split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def rootless_overlay() -> str:
    """How a rootless container's root is assembled: native overlay needs kernel >= 5.11."""
    forced = os.environ.get("JUPYBOX_OVERLAY")
    if forced in ("fuse-overlayfs", "overlay"):
        return forced
    if kernel_at_least(5, 11) or not shutil.which("fuse-overlayfs"):
        return "overlay"
    return "fuse-overlayfs"


def _run_probe(scratch: str) -> dict:
    try:
        out = subprocess.run([sys.executable, "-m", "jupybox.linux.probe", scratch], capture_output=True,
                             text=True, timeout=30, env={**os.environ, "PYTHONSAFEPATH": "1"})
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        return json.loads(line) if line else {"namespaces": (out.stderr.strip() or "probe failed")[-300:]}
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return {"namespaces": f"probe failed: {e}"}


_cached: Mode | None = None


def detect(scratch: str | None = None, refresh: bool = False) -> Mode:
    """The mode of this process (tried once, then remembered)."""
    global _cached
    if _cached is not None and not refresh:
        return _cached
    if os.environ.get("JUPYBOX_ISOLATION", "").lower() == "none":
        _cached = Mode(FALLBACK, "JUPYBOX_ISOLATION=none asks for no isolation")
        return _cached
    if os.environ.get("JUPYBOX_NO_SERVICE"):
        # a JupyterHub server started by jupybox.hub: the spawner says why no container runs here
        _cached = Mode(FALLBACK, os.environ["JUPYBOX_NO_SERVICE"].splitlines()[0][:500])
        return _cached
    if scratch is None:
        from ..paths import Layout

        scratch = str(Layout().ensure().tmp)
    got = _run_probe(scratch)
    euid = os.geteuid()
    if got.get("namespaces"):
        why = got["namespaces"]
        hint = "" if euid == 0 else _userns_hint()
        _cached = Mode(FALLBACK, f"no namespace can be created here ({why}){hint}")
        return _cached
    if euid == 0:
        _cached = Mode(ROOT, "running as root", overlay="overlay")
        return _cached
    idmap = current_idmap()
    notes = []
    if not idmap.full:
        notes.append("no /etc/subuid and /etc/subgid range (or no newuidmap): only root exists inside; "
                     "chown to other ids and USER switches fail")
    overlay = rootless_overlay()
    if overlay == "overlay" and got.get("overlay"):
        overlay = "fuse-overlayfs" if shutil.which("fuse-overlayfs") else "overlay"
        notes.append(f"overlayfs in a user namespace failed ({got['overlay']})"
                     + ("; using fuse-overlayfs" if overlay == "fuse-overlayfs" else ""))
    flavor = "overlay (userxattr)" if overlay == "overlay" else overlay
    _cached = Mode(ROOTLESS, f"uid {euid} is not root: containers run in user namespaces", idmap, flavor, notes)
    return _cached


def _userns_hint() -> str:
    for path, bad, hint in (
        ("/proc/sys/user/max_user_namespaces", "0", "user.max_user_namespaces is 0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone is 0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
         "AppArmor restricts unprivileged user namespaces"),
    ):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return f"; {hint}"
        except OSError:
            pass
    return ""


def reset() -> None:
    """Forget the detected mode (tests)."""
    global _cached
    _cached = None
