"""Overlay markers and ownership in a layer directory of the store: one choice, made by the euid.

A store is written either by root (``/var/lib/jupybox``) or by one normal user (``~/.local/share/
jupybox``; see :mod:`jupybox.paths`), so the format of its layer directories follows the euid of
the process writing or reading them:

=====================  =============================  ==========================================
                       root                           rootless (euid != 0)
=====================  =============================  ==========================================
overlay mount          in the initial user namespace  inside the container's user namespace,
                                                      with ``-o userxattr`` (kernel >= 5.11)
opaque directory       ``trusted.overlay.opaque=y``   ``user.overlay.opaque=y``
whiteout               0/0 character device           0/0 character device (``mknod`` of a 0/0
                                                      char device needs no CAP_MKNOD since 5.8)
ownership              numeric uid/gid of the tar     the user (= root in the user namespace)
device nodes           created                        skipped (fifos are kept)
``trusted.*``,         kept                           skipped (need CAP_SYS_ADMIN / CAP_SETFCAP
``security.*`` xattrs                                 in the initial user namespace)
=====================  =============================  ==========================================

Overlay's own xattrs in an archive (``trusted.overlay.*`` and ``user.overlay.*``) are never
extracted in either mode: only the whiteout members of the tar decide what is hidden.

The extractor (:mod:`jupybox.image.layer`) and the build's layer export
(:mod:`jupybox.dockerfile.layers`) both ask here, so they cannot disagree; the runtime mounts with
``userxattr`` exactly when :func:`privileged` is False.

Whiteouts stay 0/0 character devices rootless: ``vfs_mknod`` exempts exactly that device from
CAP_MKNOD since Linux 5.8 (measured on 6.18 as a user made with useradd: 0/0 char succeeds, 1/3
char and 0/0 block get EPERM), and overlayfs with ``userxattr`` reads them like any whiteout.
Not used: the xattr form of kernel 6.7+ (a zero-size file with ``overlay.whiteout`` in a directory
with ``overlay.whiteouts``), meant for layers stored on an overlayfs mount (nesting).
"""

from __future__ import annotations

import errno
import os
import stat

OPAQUE_MARKER = ".wh..wh..opq"
WHITEOUT_PREFIX = ".wh."

TRUSTED_OVERLAY = "trusted.overlay."
USER_OVERLAY = "user.overlay."
OVERLAY_XATTR_PREFIXES = (TRUSTED_OVERLAY, USER_OVERLAY)
#: xattr namespaces an unprivileged process cannot set on the host
PRIVILEGED_XATTR_PREFIXES = ("trusted.", "security.")

_NO_XATTR = {errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}


def privileged() -> bool:
    """True when this process writes a root store (euid 0), False for a rootless store."""
    return os.geteuid() == 0


def overlay_xattr_prefix() -> str:
    """``trusted.overlay.`` for root, ``user.overlay.`` rootless (overlayfs mounted with ``userxattr``)."""
    return TRUSTED_OVERLAY if privileged() else USER_OVERLAY


def opaque_xattr() -> str:
    """The xattr that marks an opaque directory in this store."""
    return overlay_xattr_prefix() + "opaque"


def is_opaque(path: str | os.PathLike) -> bool:
    """Whether the directory ``path`` carries this store's opaque marker."""
    try:
        return os.getxattr(path, opaque_xattr(), follow_symlinks=False) == b"y"
    except OSError as e:
        if e.errno in _NO_XATTR:
            return False
        raise


def set_opaque(path: str | os.PathLike) -> None:
    name = opaque_xattr()
    try:
        os.setxattr(path, name, b"y", follow_symlinks=False)
    except PermissionError:
        raise PermissionError(errno.EPERM, f"cannot set {name} on {os.fspath(path)} (root without "
                                           f"CAP_SYS_ADMIN in the initial user namespace?)") from None


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def make_whiteout(path: str | os.PathLike) -> None:
    """A 0/0 character device at ``path`` (overlay's whiteout, in both modes). Raises
    FileExistsError; PermissionError where an unprivileged mknod of it is refused (Linux < 5.8)."""
    os.mknod(path, stat.S_IFCHR, 0)


def may_chown() -> bool:
    """Whether ownership from an archive can be applied (root only: rootless, everything is the
    user's own, which is root inside the container's user namespace)."""
    return privileged()


def may_mknod(kind: int, rdev: int) -> bool:
    """Whether a device node of type ``kind`` (stat.S_IFCHR/S_IFBLK) and ``rdev`` can be made:
    any as root; rootless only the 0/0 character device (a whiteout)."""
    return privileged() or (kind == stat.S_IFCHR and rdev == 0)


def keep_xattr(name: str, privileged_store: bool | None = None) -> bool:
    """Whether an xattr from an archive (or a build source) is written to a layer directory:
    never overlay's own; rootless, not ``trusted.*``/``security.*`` either (``user.*`` is kept)."""
    if name.startswith(OVERLAY_XATTR_PREFIXES):
        return False
    if privileged_store is None:
        privileged_store = privileged()
    return privileged_store or not name.startswith(PRIVILEGED_XATTR_PREFIXES)
