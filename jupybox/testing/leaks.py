"""Did a test leave anything behind?

    before = snapshot(roots=[store_dir])
    ... run containers ...
    assert_no_leaks(before)          # raises LeakError listing what is new

Compared: mounts (``/proc/self/mountinfo``) whose mount point contains
"jupybox" or lies under one of ``roots``; cgroup directories under
/sys/fs/cgroup (up to depth 4) with "jupybox" in their path that are ours (hold
one of our processes, or are named after a container directory in ``roots``, or,
without roots, are empty: see :func:`_ours`);
processes that descend from this one; this process's open file descriptors.

Processes and cgroups get a short grace period (a container's teardown may
still be running when the test body returns).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

CGROUP_ROOT = "/sys/fs/cgroup"
# Parent groups that a runtime creates once and keeps (they are not leaks).
CGROUP_PARENTS = frozenset({"jupybox", os.environ.get("JUPYBOX_CGROUP_PARENT") or "jupybox"})


def _keyword() -> str:
    """The cgroup parent jupybox uses here ($JUPYBOX_CGROUP_PARENT, like docker's --cgroup-parent)."""
    return os.environ.get("JUPYBOX_CGROUP_PARENT") or "jupybox"


class LeakError(AssertionError):
    pass


@dataclass
class Snapshot:
    mounts: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)
    children: dict[int, str] = field(default_factory=dict)
    fds: dict[int, str] = field(default_factory=dict)
    roots: tuple[str, ...] = ()
    keyword: str = "jupybox"


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040 \011 \012 \134
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts(roots: Iterable[str] = (), keyword: str = "jupybox") -> set[str]:
    roots = [os.path.realpath(r).rstrip("/") for r in roots]
    found: set[str] = set()
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) < 5:
            continue
        mp = _unescape(parts[4])
        if (keyword and keyword in mp) or any(mp == r or mp.startswith(r + "/") for r in roots):
            found.add(mp)
    return found


def cgroups(keyword: str | None = None, root: str = CGROUP_ROOT, depth: int = 4) -> set[str]:
    keyword = keyword or _keyword()
    parents = CGROUP_PARENTS | {keyword}
    found: set[str] = set()

    def walk(path: str, level: int) -> None:
        if level > depth:
            return
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            try:
                if not e.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            if keyword in e.path[len(root):] and e.name not in parents:
                found.add(e.path)
            walk(e.path, level + 1)

    walk(root, 1)
    return found


def children(pid: int | None = None) -> dict[int, str]:
    """All descendants of ``pid`` (default: this process), pid -> command line (zombies included)."""
    pid = os.getpid() if pid is None else pid
    parent_of: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces/parens: split after the last ')'
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) >= 2:
            parent_of[int(d)] = int(rest[1])
    found: dict[int, str] = {}
    frontier = {pid}
    while frontier:
        nxt = {p for p, pp in parent_of.items() if pp in frontier and p not in found and p != pid}
        for p in nxt:
            found[p] = cmdline(p)
        frontier = nxt
    return found


def cmdline(pid: int) -> str:
    """A process's command line (its [name] and state when it has none: a zombie, a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        if cmd:
            return cmd
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return "[" + stat[stat.find("(") + 1 : stat.rfind(")")] + "] " + stat[stat.rfind(")") + 2 :].split()[0]
    except OSError:
        return "?"


def fds() -> dict[int, str]:
    found: dict[int, str] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for n in names:
        try:
            found[int(n)] = os.readlink(f"/proc/self/fd/{n}")
        except OSError:
            continue  # the fd that listdir itself used
    return found


def snapshot(roots: Iterable[str | os.PathLike] = (), keyword: str = "jupybox") -> Snapshot:
    roots = tuple(str(r) for r in roots)
    return Snapshot(
        mounts=mounts(roots, keyword),
        cgroups=cgroups(),
        children=children(),
        fds=fds(),
        roots=roots,
        keyword=keyword,
    )


def _container_ids(roots: Iterable[str]) -> set[str]:
    ids: set[str] = set()
    for r in roots:
        try:
            ids.update(e.name for e in os.scandir(os.path.join(r, "containers")))
        except OSError:
            pass
    return ids


def _ours(cgroup: str, descendants: dict[int, str], roots: tuple[str, ...] = ()) -> bool:
    """Is a new cgroup a leak of ours (and not of another process's containers)?

    cgroups are machine-wide: other test runs and notebooks on the same machine make them too,
    some held empty ahead of time. A cgroup is ours when it holds one of our descendants, or,
    with ``roots``, when one of those stores has a container directory of that name (the runtime
    makes the directory before the cgroup and removes it after); without roots, when it is empty.
    """
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pids = {int(p) for p in f.read().split()}
    except (OSError, ValueError):
        return False  # gone meanwhile, or unreadable
    if pids & set(descendants):
        return True
    if roots:
        return os.path.basename(cgroup) in _container_ids(roots)
    return not pids


def diff(before: Snapshot, roots: Iterable[str | os.PathLike] = ()) -> dict[str, list[str]]:
    """What is present now and was not in ``before`` (empty lists when clean)."""
    all_roots = tuple(before.roots) + tuple(str(r) for r in roots)
    now_children = children()
    now_fds = fds()
    new_cgroups = [cg for cg in sorted(cgroups() - before.cgroups) if _ours(cg, now_children, all_roots)]
    return {
        "mounts": sorted(mounts(all_roots, before.keyword) - before.mounts),
        "cgroups": new_cgroups,
        "processes": [f"{p}: {c}" for p, c in sorted(now_children.items()) if p not in before.children],
        "fds": [f"{fd} -> {t}" for fd, t in sorted(now_fds.items()) if before.fds.get(fd) != t],
    }


def assert_no_leaks(
    before: Snapshot,
    roots: Iterable[str | os.PathLike] = (),
    *,
    grace: float = 2.0,
    check_fds: bool = True,
    fd_slack: int = 0,
    check_cgroups: bool = True,
) -> None:
    """Raise :class:`LeakError` if mounts, cgroups, descendant processes or fds were left behind.

    Polls for up to ``grace`` seconds before deciding. ``fd_slack`` tolerates that
    many new fds (some libraries open one lazily and keep it). Mounts (by keyword) and cgroups
    are machine-wide: containers of other processes running at the same time show up too.
    """
    roots = tuple(roots)
    # a store's service (and its sandboxes made ahead) is not a leak, but it must be stoppable:
    # stopped here, what remains is what it failed to clean up
    for r in tuple(before.roots) + roots:
        stop_services(r)
    deadline = time.monotonic() + grace
    while True:
        leaks = diff(before, roots)
        if not check_fds or len(leaks["fds"]) <= fd_slack:
            leaks["fds"] = []
        if not check_cgroups:  # cgroups are machine-wide: other processes' containers show up too
            leaks["cgroups"] = []
        if not any(leaks.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if any(leaks.values()):
        lines = ["resources left behind:"]
        for kind, items in leaks.items():
            for item in items:
                lines.append(f"  {kind}: {item}")
        raise LeakError("\n".join(lines))


def stop_services(root: str | os.PathLike) -> None:
    """Shut down every service of the store ``root`` (killing its containers) and reap it."""
    from ..service import stop_all

    stop_all(root)


def cleanup_mounts_under(root: str | os.PathLike) -> list[str]:
    """Lazily unmount everything mounted under ``root`` (deepest first); returns what was unmounted."""
    import subprocess

    r = os.path.realpath(root).rstrip("/")
    targets = sorted(mounts([r], keyword=""), key=lambda p: p.count("/"), reverse=True)
    done = []
    for mp in targets:
        if subprocess.run(["umount", "-l", mp], capture_output=True).returncode == 0:
            done.append(mp)
    return done


def cleanup_path(path: str | os.PathLike) -> None:
    """Unmount anything under ``path`` then remove it."""
    import shutil

    cleanup_mounts_under(path)
    shutil.rmtree(Path(path), ignore_errors=True)


def processes_rooted_under(root: str | os.PathLike) -> dict[int, str]:
    """Processes whose root directory or cwd (as seen from here) lies under ``root``."""
    r = os.path.realpath(root).rstrip("/")
    found: dict[int, str] = {}
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        for link in ("root", "cwd"):
            try:
                target = os.readlink(f"/proc/{d}/{link}")
            except OSError:
                continue
            if target == r or target.startswith(r + "/"):
                found[int(d)] = cmdline(int(d))
                break
    return found


def kill_processes_under(root: str | os.PathLike, timeout: float = 2.0) -> dict[int, str]:
    """SIGKILL the processes found by :func:`processes_rooted_under`; returns them."""
    import signal

    victims = processes_rooted_under(root)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in victims):
        for p in victims:  # reap our own children so they don't linger as zombies
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.02)
    return victims


def new_cgroups(before: set[str], settle: float = 2.0, roots: Iterable[str | os.PathLike] = ()) -> set[str]:
    """jupybox cgroups present now and not in ``before``, once they have had ``settle`` seconds to go
    (and the services of the stores ``roots`` have been stopped: their sandboxes made ahead are
    not leaks).

    A cgroup that another jupybox process (a second test run, a notebook) holds for a moment is
    not a leak of ours; one that is still there after the wait is."""
    for r in roots:
        stop_services(r)
    deadline = time.monotonic() + settle
    while True:
        extra = cgroups() - before
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.05)
