"""python -m jupybox.testing.chroot [--mount-point] DIR -- CMD ...: run CMD chrooted into DIR.

What a chroot gives (a build sandbox, some CI containers): DIR shows this machine's top-level
directories, each bound into it recursively (``/proc``, ``/sys`` and ``/dev`` with what is mounted
on them; symbolic links such as ``/bin -> usr/bin`` copied as links), except ``/tmp``, which is
DIR's own (sticky), and what DIR already holds (a directory is bound only where DIR has none or an
empty one). Everything is mounted in a mount
namespace of its own whose mounts are slaves of this one's: nothing mounted there reaches the
machine, and it is all gone once the last process in it has exited.

By default DIR stays a plain directory, so that ``/`` is not a mount point inside (a chroot into an
unpacked tree). ``--mount-point`` binds DIR onto itself first (``mount --bind DIR DIR`` before
``chroot DIR``): then ``/`` is a mount point, and only the chroot differs from a machine's root.
Needs root.
"""

from __future__ import annotations

import os
import sys

from ..linux import syscalls as sc

# Not bound from the machine: DIR's own /tmp; a filesystem's lost+found is nobody's business.
OWN = ("tmp",)
SKIP = ("lost+found",)


def populate(root: str) -> None:
    """Bind this machine's top-level directories into ``root`` (see the module's docstring)."""
    for name in sorted(os.listdir("/")):
        src, dst = "/" + name, os.path.join(root, name)
        if name in SKIP:
            continue
        if os.path.islink(src):
            if not os.path.lexists(dst):
                os.symlink(os.readlink(src), dst)
        elif name in OWN:
            os.makedirs(dst, exist_ok=True)
            os.chmod(dst, 0o1777)
        elif os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
            if not os.listdir(dst):  # an empty mount point, made here by an earlier run
                sc.mount(src, dst, None, sc.MS_BIND | sc.MS_REC)


def enter(root: str, mount_point: bool) -> None:
    """Into a new mount namespace (slave of this one), ``root`` populated, chrooted into it."""
    root = os.path.realpath(root)
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    if mount_point:
        sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
    populate(root)
    os.chroot(root)
    os.chdir("/")


def main(argv: list[str]) -> int:
    mount_point = argv[:1] == ["--mount-point"]
    if mount_point:
        argv = argv[1:]
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m jupybox.testing.chroot [--mount-point] DIR -- CMD [ARG...]", file=sys.stderr)
        return 2
    enter(argv[0], mount_point)
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
