"""User namespaces: the id map of a rootless container, and entering a new namespace mapped.

A normal user becomes root in a new user namespace by mapping their own uid to 0. That single
mapping needs no help (the process writes its own ``uid_map``, after ``setgroups`` is denied), but
no other id exists inside: ``chown`` to 1000 fails, ``USER nobody`` cannot be switched to. With
ranges in /etc/subuid and /etc/subgid, the setuid helpers ``newuidmap``/``newgidmap`` (Debian's
``uidmap``) write a full map, as podman does: 0 -> the user, 1..65536 -> the sub-ids. The helpers
must run outside the new namespace, so a small child forked before the ``unshare`` runs them.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass

from . import syscalls as sc

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


@dataclass(frozen=True)
class IdMap:
    """(inside, outside, count) ranges for uids and gids."""

    uids: tuple[tuple[int, int, int], ...]
    gids: tuple[tuple[int, int, int], ...]

    @property
    def full(self) -> bool:
        """More than root is mapped (sub-id ranges): other users and groups exist inside."""
        return len(self.uids) > 1 and len(self.gids) > 1

    def describe(self) -> str:
        if not self.full:
            return f"single id (root inside = uid {self.uids[0][1]} outside; no other uid exists)"
        _, start, count = self.uids[1]
        return f"uid 0 -> {self.uids[0][1]}, 1-{count} -> {start}-{start + count - 1} (/etc/subuid)"

    def inside_uid_exists(self, uid: int) -> bool:
        return any(inside <= uid < inside + count for inside, _, count in self.uids)

    def inside_gid_exists(self, gid: int) -> bool:
        return any(inside <= gid < inside + count for inside, _, count in self.gids)


def subordinate_range(path: str, name: str | None, uid: int) -> tuple[int, int] | None:
    """The first ``name:start:count`` (or ``uid:start:count``) line of /etc/subuid-like files."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                    continue
                if parts[0] in (name, str(uid)) and int(parts[2]) > 0:
                    return int(parts[1]), int(parts[2])
    except OSError:
        pass
    return None


def helpers_available() -> bool:
    """newuidmap and newgidmap exist and are setuid root (or carry file capabilities)."""
    for tool in ("newuidmap", "newgidmap"):
        path = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if path is None:
            return False
        st = os.stat(path)
        if not (st.st_mode & 0o4000 and st.st_uid == 0) and not _has_file_caps(path):
            return False
    return True


def _has_file_caps(path: str) -> bool:
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def idmap_for(uid: int, gid: int, name: str | None = None, subuid: str = SUBUID, subgid: str = SUBGID,
              helpers: bool | None = None) -> IdMap:
    """The map for a user: full when both sub-id files have a range and the helpers exist."""
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = None
    us = subordinate_range(subuid, name, uid)
    gs = subordinate_range(subgid, name, uid)
    if us and gs and (helpers_available() if helpers is None else helpers):
        return IdMap(((0, uid, 1), (1, us[0], us[1])), ((0, gid, 1), (1, gs[0], gs[1])))
    return IdMap(((0, uid, 1),), ((0, gid, 1),))


def current_idmap() -> IdMap:
    return idmap_for(os.geteuid(), os.getegid())


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _run_helpers(pid: int, idmap: IdMap) -> str:
    """In the child outside the namespace: newuidmap then newgidmap; '' or the failure."""
    for tool, ranges in (("newuidmap", idmap.uids), ("newgidmap", idmap.gids)):
        args = [tool, str(pid)] + [str(v) for r in ranges for v in r]
        r, w = os.pipe()
        try:
            child = os.posix_spawnp(tool, args, {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL": "C"},
                                    file_actions=[(os.POSIX_SPAWN_DUP2, w, 2), (os.POSIX_SPAWN_DUP2, w, 1)])
        except OSError as e:
            return f"{tool}: {e.strerror}"
        finally:
            os.close(w)
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
        os.close(r)
        _, status = os.waitpid(child, 0)
        if status != 0:
            msg = out.decode(errors="replace").strip().splitlines()
            return f"{tool} failed: {msg[-1] if msg else 'exit status %d' % os.waitstatus_to_exitcode(status)}"
    return ""


def unshare_mapped(idmap: IdMap, flags: int = 0) -> None:
    """unshare(CLONE_NEWUSER | flags) and map ids; the other new namespaces belong to the new user
    namespace. Afterwards this process is root, with every capability, inside it.

    Call from a single-threaded process (a forked helper). Raises OSError with a clear message."""
    if not idmap.full:
        sc.unshare(sc.CLONE_NEWUSER | flags)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", "".join(f"{a} {b} {c}\n" for a, b, c in idmap.uids))
        _write("/proc/self/gid_map", "".join(f"{a} {b} {c}\n" for a, b, c in idmap.gids))
        return
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    me = os.getpid()
    mapper = os.fork()
    if mapper == 0:
        try:
            os.close(go_w)
            os.close(res_r)
            if os.read(go_r, 1) == b"g":
                os.write(res_w, _run_helpers(me, idmap).encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(res_w)
    try:
        try:
            sc.unshare(sc.CLONE_NEWUSER | flags)
        except OSError:
            os.close(go_w)
            go_w = -1
            raise
        os.write(go_w, b"g")
        os.close(go_w)
        go_w = -1
        err = b""
        while chunk := os.read(res_r, 4096):
            err += chunk
    finally:
        if go_w >= 0:
            os.close(go_w)
        os.close(res_r)
        os.waitpid(mapper, 0)
    if err:
        raise OSError(1, err.decode(errors="replace"))


def rmtree(path) -> None:
    """shutil.rmtree that also removes what a rootless container wrote as another uid.

    Files a container made as uid 1000 belong to a sub-id on the host: their owner is not the
    user, who cannot delete inside such directories. Root in a user namespace mapped like the
    containers' can (podman does the same in ``podman unshare``): the rest is removed from there,
    by a short-lived process (this one may be the notebook kernel: never unshare it)."""
    import shutil
    import subprocess
    import sys

    def onerror(func, p, exc):
        if isinstance(exc[1], FileNotFoundError):
            return  # removed meanwhile by another cleanup (a prune beside a service's own)
        # a directory left without permissions (overlayfs's work/work is mode 000): ours to chmod
        try:
            os.chmod(os.path.dirname(p), 0o700)
            if func is os.open or (func is not os.rmdir and os.path.isdir(p) and not os.path.islink(p)):
                os.chmod(p, 0o700)
                shutil.rmtree(p, onerror=lambda *a: None)
            else:
                func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)
    if not os.path.lexists(path) or os.geteuid() == 0:
        return
    subprocess.run([sys.executable, "-m", "jupybox.linux.userns", "rmtree", os.fspath(path)],
                   capture_output=True, timeout=300)


def _main(argv: list[str]) -> int:
    import shutil

    if len(argv) != 2 or argv[0] != "rmtree":
        print("usage: python -m jupybox.linux.userns rmtree PATH", flush=True)
        return 2
    unshare_mapped(current_idmap())
    shutil.rmtree(argv[1], ignore_errors=True)
    return 0 if not os.path.lexists(argv[1]) else 1


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
