"""python -m jupybox.testing.chroot [--mount-point | --on-shared-mount] DIR -- CMD ...: CMD chrooted into DIR.

What a chroot gives (a build sandbox, some CI containers): DIR shows the host's top-level
directories, each bound into it recursively (``/proc``, ``/sys`` and ``/dev`` with what is mounted
on them; symbolic links such as ``/bin -> usr/bin`` copied as links), except ``/tmp``, which is
DIR's own (sticky), and what DIR already holds (a directory is bound only where DIR has none or an
empty one). Everything is mounted in a mount namespace of its own whose mounts are slaves of this
one's: nothing mounted there reaches the machine, and it is all gone once the last process in it
has exited.

By default DIR stays a plain directory, so that ``/`` is not a mount point inside (a chroot into an
unpacked tree). ``--mount-point`` binds DIR onto itself first (``mount --bind DIR DIR`` before
``chroot DIR``): then ``/`` is a mount point, and only the chroot differs from a machine's root.

``--on-shared-mount`` (``/`` not a mount point either) puts DIR on a shared mount, as ``/`` is on
a machine booted by systemd: DIR's parent bound onto itself and made shared, with a peer at
``DIR/.peer`` (DIR's parent again, without what is mounted below it). Whatever a mount made on
DIR's file system propagates to its peers shows up under ``/.peer/<DIR's name>`` inside: where
nothing may propagate, nothing must be mounted there. Needs root.
"""

from __future__ import annotations

import os
import sys

from ..linux import syscalls as sc

# Not bound from the machine: DIR's own /tmp; a filesystem's lost+found is nobody's business.
OWN = ("tmp",)
SKIP = ("lost+found",)


def populate(root: str) -> None:
    """Bind the host's top-level directories into ``root`` (see the module's docstring)."""
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


def enter(root: str, how: str = "") -> None:
    """Into a new mount namespace (slave of this one), ``root`` populated, chrooted into it; ``how``
    is one of :data:`HOW`, or empty (``/`` not a mount point): see the module's docstring."""
    root = os.path.realpath(root)
    parent = os.path.dirname(root)
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    if how == "--mount-point":
        sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
    elif how == "--on-shared-mount":
        sc.mount(parent, parent, None, sc.MS_BIND)  # private until populated: the binds stay its own
    populate(root)
    if how == "--on-shared-mount":
        sc.mount(None, parent, None, sc.MS_SHARED)
        peer = os.path.join(root, ".peer")
        os.makedirs(peer, exist_ok=True)
        sc.mount(parent, peer, None, sc.MS_BIND)
    os.chroot(root)
    os.chdir("/")


HOW = ("--mount-point", "--on-shared-mount")


def main(argv: list[str]) -> int:
    how = argv[0] if argv[:1] and argv[0] in HOW else ""
    if how:
        argv = argv[1:]
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m jupybox.testing.chroot [--mount-point | --on-shared-mount] DIR -- CMD [ARG...]",
              file=sys.stderr)
        return 2
    enter(argv[0], how)
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
