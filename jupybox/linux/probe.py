"""Try, in a throwaway process, what containers need: new namespaces, and overlayfs in them.

    python -m jupybox.linux.probe SCRATCH_DIR    ->  one JSON line on stdout

Trying is the only honest test: a seccomp filter, a sysctl (user.max_user_namespaces,
kernel.unprivileged_userns_clone), an AppArmor rule or a container around us can each forbid
what the kernel version says is there. The probe runs as its own process because unshare(2)
changes the caller for good, and the notebook kernel must never fork.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from . import syscalls as sc

ROOT_FLAGS = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID | sc.CLONE_NEWNET


def _overlay(scratch: str, userxattr: bool) -> str:
    """'' if an overlay mounts in our (new) mount namespace, else why not."""
    try:
        d = tempfile.mkdtemp(prefix="probe-", dir=scratch)
    except OSError as e:
        return f"scratch directory {scratch}: {e.strerror}"
    try:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        opts = f"lowerdir={d}/l,upperdir={d}/u,workdir={d}/w" + (",userxattr" if userxattr else "")
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        sc.mount("overlay", f"{d}/m", "overlay", 0, opts)
        sc.umount2(f"{d}/m", sc.MNT_DETACH)
        return ""
    except OSError as e:
        return str(e)
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def probe(scratch: str) -> dict:
    out: dict = {"euid": os.geteuid()}
    try:
        if os.geteuid() == 0:
            sc.unshare(ROOT_FLAGS)
        else:
            from .userns import IdMap, unshare_mapped

            uid, gid = os.geteuid(), os.getegid()
            unshare_mapped(IdMap(((0, uid, 1),), ((0, gid, 1),)), ROOT_FLAGS)
        out["namespaces"] = ""
    except OSError as e:
        out["namespaces"] = str(e) or "unshare failed"
        return out
    out["overlay"] = _overlay(scratch, userxattr=out["euid"] != 0)
    return out


def main() -> None:
    scratch = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    print(json.dumps(probe(scratch)), flush=True)


if __name__ == "__main__":
    main()
