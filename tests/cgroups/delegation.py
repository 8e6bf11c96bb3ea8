"""A cgroup v2 subtree delegated to a test user the way systemd's ``Delegate=yes`` does it for
``user@UID.service`` (systemd.resource-control(5), "Delegation"), on a pure v2 kernel, as root:

    <top>/user-UID.slice/user@UID.service/              the user owns the directory, cgroup.procs,
                                                        cgroup.threads and cgroup.subtree_control
    <top>/user-UID.slice/user@UID.service/app.slice/jupybox-test.scope/
                                                        made by "the user's manager": all the user's,
                                                        where the user's commands run

``<top>`` is a slice of the test's own (``jupybox-test-<pid>-users.slice``) rather than systemd's
``user.slice``, so that a test on a real systemd machine never touches what systemd manages.
Controllers cpu, memory and pids are enabled down to user@UID.service, as systemd does for a unit
with ``Delegate=cpu memory pids`` (user@.service's default). Everything is removed on exit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "memory", "pids")
DELEGATED_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")


@dataclass
class Delegation:
    top: Path
    service: Path  # user@UID.service: the delegation's top
    scope: Path  # where the user's commands run

    def argv(self, user, argv: list[str]) -> list[str]:
        """``argv`` run as ``user`` from inside the delegated scope (root moves the process in first,
        as systemd starts a unit's process in its cgroup)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.scope / "cgroup.procs"),
                *user.argv(argv)]

    def run(self, user, argv: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(user, argv), env=user.env(), cwd=user.home, capture_output=True,
                              text=True, timeout=timeout, **kw)

    def children(self) -> list[str]:
        """The delegation's cgroups besides the user's app.slice (jupybox's parent, until removed)."""
        return sorted(p.name for p in self.service.iterdir() if p.is_dir() and p.name != "app.slice")


def _enable(cgroup: Path) -> None:
    (cgroup / "cgroup.subtree_control").write_text(" ".join("+" + c for c in CONTROLLERS))


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, gid)


def _remove(top: Path) -> None:
    """Kill what is left in the tree, then rmdir it deepest first."""
    if not top.exists():
        return
    with contextlib.suppress(OSError):
        (top / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + 10
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [top]:
        while True:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


@contextlib.contextmanager
def delegated_to(user, name: str | None = None):
    """A Delegation for ``user`` (jupybox.testing.rootless.User) for the duration of the block."""
    top = ROOT / (name or f"jupybox-test-{os.getpid()}-users.slice")
    service = top / f"user-{user.uid}.slice" / f"user@{user.uid}.service"
    scope = service / "app.slice" / "jupybox-test.scope"
    try:
        _enable(ROOT)
        for d in (top, top / f"user-{user.uid}.slice", service):
            d.mkdir()
        for d in (top, top / f"user-{user.uid}.slice"):
            _enable(d)
        os.chown(service, user.uid, user.gid)
        for f in DELEGATED_FILES:
            os.chown(service / f, user.uid, user.gid)
        scope.mkdir(parents=True)
        _chown_tree(service / "app.slice", user.uid, user.gid)
        yield Delegation(top, service, scope)
    finally:
        _remove(top)
