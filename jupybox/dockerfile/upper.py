"""A RUN step's overlay upper directory → its layer (:func:`commit_upper`).

The container's write layer *is* the step's change set: it is walked once (sorted,
deterministic) into a tar, and then renamed, as it is, into the store as the layer's unpacked directory (``layers/<diff-id>``), which has exactly the store's
format (whiteouts as 0/0 character devices, opaque directories by xattr). Per entry:

* a 0/0 character device (overlay's whiteout) → an empty ``DIR/.wh.NAME``;
* a directory with the store's opaque xattr (:func:`jupybox.image.markers.opaque_xattr`:
  ``trusted.overlay.opaque=y`` as root, ``user.overlay.opaque=y`` rootless, where overlayfs is
  mounted with ``userxattr``) → the directory, then ``DIR/.wh..wh..opq``;
* regular files (hard links within the layer become tar hard links), symlinks, devices, fifos;
  sockets are skipped (as docker does); mode bits (setuid, setgid, sticky), numeric uid/gid, mtime
  (seconds) and xattrs (pax ``SCHILY.xattr.*``; overlay's own ``trusted.overlay.*`` and
  ``user.overlay.*`` are dropped). Rootless, the upper dir holds host ids: they are written as the
  ids inside the container's user namespace (the user → 0, sub-ids → 1.., see :func:`id_mapper`);
* what the runtime, not the command, put in the upper dir is left out (:func:`runtime_artifacts`):
  ``etc/hosts``, ``etc/hostname``, ``etc/resolv.conf`` — the runtime creates them *empty* in
  ``upper/etc`` as bind-mount targets, and anything the command writes to them goes to the bound
  files, not there (docker keeps those files out of images too) — so they are dropped when they are
  empty regular files (a non-empty one cannot come from the runtime and is kept); then ``etc``
  itself when nothing else is left in it (it was only the mount points' parent), and ``proc``,
  ``sys``, ``dev`` when they are empty directories (the runtime makes them as mount points when the
  image lacks them; with proc, sysfs and a tmpfs mounted there, nothing a command does lands in
  the upper dir at those paths).
  When ``etc`` stays (the command wrote under /etc) it gets the image's /etc metadata back,
  since the runtime's ``mkdir`` gave it fresh metadata.
"""

from __future__ import annotations

import errno
import os
import stat

from ..image import markers
from .layers import WHITEOUT_PREFIX, LayerRef, LayerWriter, adopt_dir, xattrs

RUNTIME_ETC_FILES = ("hosts", "hostname", "resolv.conf")
RUNTIME_MOUNT_DIRS = ("proc", "sys", "dev")
OVERFLOW_ID = 65534  # what the kernel shows for an id with no mapping (nobody/nogroup)


def runtime_artifacts(upper: str, image_fs) -> None:
    """Remove from ``upper`` what the runtime made there (see the module doc); fix ``etc``'s metadata."""
    etc = os.path.join(upper, "etc")
    try:
        st_etc = os.lstat(etc)
    except FileNotFoundError:
        st_etc = None
    if st_etc is not None and stat.S_ISDIR(st_etc.st_mode):
        for name in RUNTIME_ETC_FILES:
            p = os.path.join(etc, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(p)
        image_etc = image_fs.lstat("etc") if image_fs is not None else None
        if not os.listdir(etc):
            os.rmdir(etc)
        elif image_etc is not None and stat.S_ISDIR(image_etc.st_mode):
            if markers.may_chown():  # rootless: both are the user's (root inside)
                os.chown(etc, image_etc.st_uid, image_etc.st_gid, follow_symlinks=False)
            os.chmod(etc, stat.S_IMODE(image_etc.st_mode))
            os.utime(etc, ns=(image_etc.st_atime_ns, image_etc.st_mtime_ns), follow_symlinks=False)
    for name in RUNTIME_MOUNT_DIRS:
        p = os.path.join(upper, name)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode) and not os.listdir(p):
            os.rmdir(p)


def _check_overlay_features(path: str) -> None:
    prefix = markers.overlay_xattr_prefix()  # rootless (userxattr), the kernel refuses both anyway
    for attr in (prefix + "metacopy", prefix + "redirect"):
        try:
            os.getxattr(path, attr, follow_symlinks=False)
        except OSError:
            continue
        raise OSError(errno.ENOTSUP, f"{path}: overlayfs {attr.split('.')[-1]} is not supported in build layers "
                                     f"(mount without metacopy/redirect_dir)")


def _reverse(ranges):
    def f(outside: int) -> int:
        for inside, start, count in ranges:
            if start <= outside < start + count:
                return inside + outside - start
        return OVERFLOW_ID
    return f


def id_mapper(idmap=None):
    """``(uid_of, gid_of)``: host ids in an upper dir → the ids inside the container. Root store:
    the identity. Rootless: through the user-namespace map of :mod:`jupybox.linux.userns` (the user
    → 0, sub-ids → 1..; an id outside the map → 65534, as the kernel shows it)."""
    if idmap is None:
        if markers.privileged():
            return (lambda u: u), (lambda g: g)
        try:
            from ..linux.userns import current_idmap

            idmap = current_idmap()
        except Exception:  # the map cannot be read: the single mapping is always right for the user
            return _reverse(((0, os.geteuid(), 1),)), _reverse(((0, os.getegid(), 1),))
    return _reverse(idmap.uids), _reverse(idmap.gids)


def write_tree(w: LayerWriter, root: str, rel: str = "", idmap=None) -> None:
    """Tar the directory tree ``root/rel`` (an overlay upper dir) into ``w`` (which must not unpack).
    ``idmap`` (rootless): the container's user-namespace map; default: this user's."""
    links: dict[tuple[int, int], str] = {}
    uid_of, gid_of = id_mapper(idmap)
    is_opaque = markers.is_opaque
    base = os.path.join(root, rel) if rel else root
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return

    def visit(relpath: str, names: list[str]) -> None:
        for n in names:
            name = f"{relpath}/{n}" if relpath else n
            p = os.path.join(root, name)
            st = os.lstat(p)
            m = st.st_mode
            uid, gid = uid_of(st.st_uid), gid_of(st.st_gid)
            if stat.S_ISDIR(m):
                _check_overlay_features(p)
                w.add_dir(name, m, uid, gid, st.st_mtime, pax=xattrs(p) or None, opaque=is_opaque(p))
                visit(name, sorted(os.listdir(p)))
            elif stat.S_ISREG(m):
                _check_overlay_features(p)
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    first = links.get(key)
                    if first is not None:
                        w.add_hardlink(name, first, uid, gid, st.st_mtime)
                        continue
                    links[key] = name
                w.add_file(name, m, uid, gid, st.st_mtime, src=p, size=st.st_size, pax=xattrs(p) or None)
            elif stat.S_ISLNK(m):
                w.add_symlink(name, os.readlink(p), uid, gid, st.st_mtime, pax=xattrs(p) or None)
            elif markers.is_whiteout(st):
                parent, _, base_name = name.rpartition("/")
                wh = (parent + "/" if parent else "") + WHITEOUT_PREFIX + base_name
                w.add_file(wh, 0, uid, gid, st.st_mtime, data=b"")
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m) or stat.S_ISFIFO(m):
                w.add_special(name, st, uid, gid, pax=xattrs(p) or None)
            # sockets: skipped

    visit(rel, names)


def strip_overlayxattrs(root: str) -> None:
    """Drop overlay's bookkeeping xattrs (origin, impure) from a former upper dir: as a lower
    layer it must carry only whiteouts and opaque markers (in the store's namespace)."""
    prefix = markers.overlay_xattr_prefix()
    opaque = markers.opaque_xattr()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
            try:
                names = os.listxattr(n, follow_symlinks=False)
            except OSError:
                continue
            for a in names:
                if a.startswith(prefix) and a != opaque:
                    try:
                        os.removexattr(n, a, follow_symlinks=False)
                    except OSError:
                        pass


def commit_upper(store, upper: str, image_fs, idmap=None) -> LayerRef | None:
    """The layer of a finished RUN step; None when the step changed nothing. ``upper`` is
    consumed: it becomes the store's unpacked layer directory. ``idmap``: rootless, the user
    namespace map the step ran with (default: this user's, :func:`id_mapper`)."""
    runtime_artifacts(upper, image_fs)
    if not os.listdir(upper):
        return None
    with LayerWriter(store, unpack=False) as w:
        write_tree(w, upper, idmap=idmap)
        ref = w.commit()
    strip_overlayxattrs(upper)
    os.chmod(upper, 0o755)
    adopt_dir(store, upper, ref.diff_id)
    return ref
