"""An unprivileged user for tests of the rootless mode, made for real with useradd.

    with unprivileged_user(subids=True) as user:       # /etc/subuid and /etc/subgid ranges
        user.run(["jupybox", "run", "--rm", "host", "id"])

The user gets what it needs to run this very Python and project, nothing more: an ACL entry
granting traverse (x) on each directory above them that others cannot cross (pyenv lives under
/root, mode 0700). Everything is undone on exit: the user's processes, home, sub-id ranges and
ACL entries. Needs root, ``useradd`` (passwd) and ``setfacl`` (acl).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBID_FILES = ("/etc/subuid", "/etc/subgid")
SUBID_COUNT = 65536


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path
    subids: bool
    extra_env: dict = field(default_factory=dict)

    def env(self, **extra) -> dict:
        venv_bin = os.path.dirname(sys.executable)
        env = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        # a test user's store service leaves soon after its last container (5 s for a real user):
        # tests then see the user with no process left
        env["JUPYBOX_SERVICE_LINGER"] = os.environ.get("JUPYBOX_TEST_USER_LINGER", "0.5")
        env.update(self.extra_env)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def argv(self, argv: list[str]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *argv]

    def run(self, argv: list[str], env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.argv(argv), env=self.env(**(env or {})), cwd=kw.pop("cwd", self.home),
                              timeout=timeout, **kw)

    def popen(self, argv: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(argv), env=self.env(**(env or {})), cwd=kw.pop("cwd", self.home), **kw)

    def python(self, code: str, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-c", code], env=env, timeout=timeout, **kw)

    def give(self, path: str | os.PathLike, name: str | None = None) -> Path:
        """Copy a file into the user's home, owned by the user."""
        dst = self.home / (name or os.path.basename(path))
        shutil.copy(path, dst)
        os.chown(dst, self.uid, self.gid)
        return dst

    def processes(self) -> list[int]:
        """The user's live processes (zombies are dead: reaping them is their parent's business,
        and a test run's pytest is a subreaper that collects orphans late)."""
        from ..runtime.state import process_running

        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.stat(f"/proc/{d}").st_uid == self.uid and process_running(int(d)):
                        out.append(int(d))
                except OSError:
                    pass
        return out


def unavailable() -> str | None:
    """Why test users cannot be made here (for a skip), or None."""
    if os.geteuid() != 0:
        return "making a test user needs root (useradd)"
    missing = [t for t in ("useradd", "setfacl", "setpriv") if not shutil.which(t)]
    if missing:
        return f"needs {', '.join(missing)} (passwd, acl, util-linux)"
    return None


def _remove_subids(name: str) -> None:
    for path in SUBID_FILES:
        try:
            lines = Path(path).read_text().splitlines(keepends=True)
        except FileNotFoundError:
            continue
        kept = [ln for ln in lines if ln.split(":", 1)[0] != name]
        if kept != lines:
            Path(path).write_text("".join(kept))


def _free_subid_start() -> int:
    """A start past every range already handed out in both files."""
    end = 100000
    for path in SUBID_FILES:
        try:
            for line in Path(path).read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
        except FileNotFoundError:
            pass
    return end


def _grant_traverse(paths: list[str], name: str) -> list[str]:
    """setfacl u:NAME:x on every ancestor of ``paths`` that others cannot cross; returns them."""
    granted = []
    for p in paths:
        d = Path(os.path.realpath(p))
        for anc in [d, *d.parents]:
            try:
                st = anc.stat()
            except OSError:
                continue
            if not st.st_mode & 0o001 and str(anc) not in granted:
                subprocess.run(["setfacl", "-m", f"u:{name}:x", str(anc)], check=True)
                granted.append(str(anc))
    return granted


def _kill_all(uid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = User("", uid, 0, Path("/"), False).processes()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


@contextlib.contextmanager
def unprivileged_user(subids: bool, prefix: str = "jbxrl"):
    """A fresh user (with or without sub-id ranges) for the duration of the block."""
    if os.geteuid() != 0:
        raise PermissionError("making a test user needs root")
    name = f"{prefix}{os.getpid() % 100000}{'s' if subids else 'n'}"
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    granted: list[str] = []
    pw = pwd.getpwnam(name)
    try:
        # useradd hands out ranges itself when the files exist: make the state the one asked for
        _remove_subids(name)
        if subids:
            start = _free_subid_start()
            for path in SUBID_FILES:
                with open(path, "a") as f:
                    f.write(f"{name}:{start}:{SUBID_COUNT}\n")
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the jupybox package's parent
        granted = _grant_traverse([sys.executable, os.path.realpath(sys.executable), sys.prefix, here], name)
        yield User(name, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir), subids)
    finally:
        _kill_all(pw.pw_uid)
        for d in granted:
            subprocess.run(["setfacl", "-x", f"u:{name}", d], capture_output=True)
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
        _remove_subids(name)
