"""The built-in image ``host``: a read-only view of the host's own system, with no download.

``jupybox run host python -c ...`` runs the machine's own programs and the *running* Python
(with its packages) in a fresh container. The image has no layers; the runtime builds the root
from the lists below instead of an overlay (see :func:`host_root`).

What is visible (read-only bind mounts, same path inside as outside, :func:`host_binds`):

* ``/usr``, ``/etc``, ``/opt`` (if it exists);
* ``/bin /sbin /lib /lib32 /lib64 /libx32`` when they are real directories; on a merged-/usr
  system they are symlinks (``/bin -> usr/bin``) and are recreated as the same symlinks in the
  root instead (:func:`host_symlinks`);
* the running Python: ``sys.base_prefix`` and ``sys.prefix`` (the active virtualenv) when they
  are not already inside a bound directory, e.g. ``/root/.pyenv/versions/3.11.7`` or a venv
  under ``/work``. The *real* path is bound at the same path; when the prefix itself is reached
  through a symlink, that symlink is recreated too so ``sys.prefix`` keeps working. Only the
  exact prefix directory is visible, not its parents' other contents: the runtime creates the
  missing parents (``/root/.pyenv/versions``) as empty directories (:attr:`HostRoot.mkdirs`).

What is hidden:

* secrets inside bound trees, covered by a bind of ``/dev/null`` (:func:`host_masks`):
  ``/etc/shadow``, ``/etc/gshadow``, ``/etc/shadow-``, ``/etc/gshadow-``, the SSH host *private*
  keys ``/etc/ssh/ssh_host_*_key`` (the ``.pub`` files stay) and the files in
  ``/etc/ssl/private/``. Nothing else is masked (``/etc/sudoers`` is not a secret);
* the jupybox store, if it lives inside a bound tree (e.g. ``JUPYBOX_ROOT=/opt/jupybox``): an
  empty read-only tmpfs over it (:func:`host_hidden_dirs`);
* everything else: ``/home``, ``/root`` (except the Python prefix under it), ``/srv``, ``/mnt``,
  ``/media``, ``/boot``, the host's ``/var`` and ``/tmp`` and ``/run``: the container gets fresh
  empty ``/tmp`` (1777), ``/var``, ``/run``, ``/root`` (0700), ``/home``
  (:attr:`HostRoot.fresh_dirs`), like a new root; ``/proc``, ``/sys`` and ``/dev`` are set up by
  the runtime as for any image.

Config: ``Env`` has ``PATH`` with the running Python's bin directories first (the virtualenv's,
then the base interpreter's, each only where it is not a standard directory: see
:func:`host_path_env`), then ``/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin``;
``Cmd`` is ``["/bin/sh"]``. The image id is a sha256 of the binds, symlinks, masks and config, so
it is stable for a given machine and Python (and differs between virtualenvs).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass, field

from .model import Image

HOST_NAME = "docker.io/library/host:latest"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_DIRS = ("/usr", "/etc", "/opt")
TOP_LEVEL_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MASKED_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
SSH_HOST_KEYS = "/etc/ssh/ssh_host_*_key"
SSL_PRIVATE = "/etc/ssl/private"
FRESH_DIRS = ("/tmp", "/var", "/run", "/root", "/home")


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def python_prefixes() -> list[str]:
    """The active virtualenv's prefix (if any) then the base interpreter's, deduplicated."""
    out = []
    for p in (sys.prefix, sys.base_prefix):
        p = os.path.abspath(p)
        if p not in out:
            out.append(p)
    return out


def host_binds() -> list[tuple[str, str]]:
    """Read-only binds ``(host_path, container_path)``, outermost first."""
    binds: list[tuple[str, str]] = []
    for d in SYSTEM_DIRS:
        if os.path.isdir(d):
            binds.append((os.path.realpath(d), d))
    for d in TOP_LEVEL_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            binds.append((d, d))
    for prefix in python_prefixes():
        real = os.path.realpath(prefix)
        if any(_under(real, dst) for _, dst in binds):
            continue
        binds.append((real, real))
    return binds


def host_symlinks() -> list[tuple[str, str]]:
    """Symlinks ``(container_path, target)`` to recreate in the root: merged-/usr top-level links
    (``("/bin", "usr/bin")``) and a Python prefix reached through a symlink."""
    links: list[tuple[str, str]] = []
    for d in TOP_LEVEL_DIRS:
        if os.path.islink(d):
            links.append((d, os.readlink(d)))
    binds = host_binds()
    for prefix in python_prefixes():
        real = os.path.realpath(prefix)
        if real == prefix:
            continue
        if any(_under(prefix, dst) for _, dst in binds):
            continue  # the symlink is visible inside a bound tree, and its target is bound
        if any(_under(prefix, name) for name, _ in links):
            continue
        links.append((prefix, real))
    return links


def host_masks() -> list[str]:
    """Secret files inside the bound trees: the runtime binds /dev/null over each."""
    masks = [f for f in MASKED_FILES if os.path.lexists(f)]
    masks += sorted(glob.glob(SSH_HOST_KEYS))
    try:
        masks += sorted(os.path.join(SSL_PRIVATE, n) for n in os.listdir(SSL_PRIVATE)
                        if os.path.isfile(os.path.join(SSL_PRIVATE, n)))
    except OSError:
        pass
    return masks


def host_hidden_dirs(store_root: str | os.PathLike | None = None) -> list[str]:
    """Directories inside bound trees to cover with an empty read-only tmpfs: the jupybox store."""
    from ..paths import default_root

    root = os.path.realpath(os.fspath(store_root) if store_root is not None else default_root())
    if any(_under(root, dst) or _under(root, src) for src, dst in host_binds()):
        return [root]
    return []


def host_path_env(prefix: str | None = None, base_prefix: str | None = None, executable: str | None = None) -> str:
    """The host image's PATH: the running Python's directories first (the virtualenv's ``bin``,
    the base interpreter's, the interpreter's own), each only where it is not one of the standard
    directories, then the standard directories in their standard order. With Debian's own Python
    (base prefix ``/usr``) that is ``VENV/bin`` then the standard PATH: ``/usr/bin`` stays behind
    ``/usr/local/bin``, as on the host. Arguments default to the running interpreter's."""
    prefix = prefix if prefix is not None else sys.prefix
    base_prefix = base_prefix if base_prefix is not None else sys.base_prefix
    executable = executable if executable is not None else sys.executable
    standard = STANDARD_PATH.split(":")
    first: list[str] = []
    candidates = [os.path.join(os.path.abspath(prefix), "bin"), os.path.join(os.path.abspath(base_prefix), "bin")]
    if executable:
        candidates.append(os.path.dirname(os.path.abspath(executable)))
    for d in candidates:
        if d not in first and d not in standard:
            first.append(d)
    return ":".join(first + standard)


def host_architecture() -> str:
    """The OCI/Go name of the host's architecture (amd64, arm64, ...)."""
    m = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
            "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


@dataclass
class HostRoot:
    """Everything the runtime needs to build a container root for the host image."""

    binds: list[tuple[str, str]]  # read-only (host, container)
    symlinks: list[tuple[str, str]]  # (container path, target)
    masks: list[str]  # files: bind /dev/null over them
    hidden_dirs: list[str]  # directories: cover with an empty read-only tmpfs
    mkdirs: list[str] = field(default_factory=list)  # empty parents to create for the binds/symlinks
    fresh_dirs: list[str] = field(default_factory=lambda: list(FRESH_DIRS))  # empty, writable


def host_root(store_root: str | os.PathLike | None = None) -> HostRoot:
    binds = host_binds()
    links = host_symlinks()
    mkdirs: list[str] = []
    for path in [dst for _, dst in binds] + [name for name, _ in links]:
        chain = []
        parent = os.path.dirname(path)
        while parent not in ("/", "") and not any(_under(parent, dst) for _, dst in binds):
            chain.append(parent)
            parent = os.path.dirname(parent)
        for p in reversed(chain):
            if p not in mkdirs:
                mkdirs.append(p)
    return HostRoot(binds, links, host_masks(), host_hidden_dirs(store_root), mkdirs)


def host_config() -> dict:
    try:
        created_ts = os.stat("/etc/os-release").st_mtime
    except OSError:
        created_ts = 0
    from datetime import datetime, timezone

    created = datetime.fromtimestamp(created_ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "architecture": host_architecture(),
        "os": "linux",
        "created": created,
        "config": {
            "Env": ["PATH=" + host_path_env()],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
            "Labels": {"io.jupybox.image.host": "true"},
        },
        "rootfs": {"type": "host", "diff_ids": []},
        "history": [{"created": created, "created_by": "jupybox: built-in host image", "comment": "read-only view of the host"}],
    }


def host_image_id(config: dict | None = None) -> str:
    cfg = dict(config or host_config())
    cfg.pop("created", None)
    cfg.pop("history", None)
    blob = json.dumps({"binds": host_binds(), "symlinks": host_symlinks(), "masks": host_masks(), "config": cfg},
                      sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def host_image(store=None) -> Image:
    config = host_config()
    return Image(id=host_image_id(config), config=config, names=[HOST_NAME], is_host=True, store=store)


def is_host_reference(text: str) -> bool:
    """True for ``host``, ``host:latest``, ``library/host``, ``docker.io/library/host:latest``."""
    from .reference import parse_reference
    from ..errors import UsageError

    try:
        return str(parse_reference(text)) == HOST_NAME
    except UsageError:
        return False
