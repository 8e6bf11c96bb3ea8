"""Containers on disk: ``containers/<id>/`` with config.json, state.json, the write layer and logs.

Names are claimed with an atomic ``symlink(id, names/<name>)``: two processes asking for the same
name cannot both win, and a name is freed by unlinking it.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from pathlib import Path

from ..errors import Conflict, ContainerNotFound, UsageError
from ..paths import Layout
from .state import State, now_iso, read_json, stage_json, tmp_path, write_json_atomic

SPARES = 8  # emptied container directories kept for reuse (Records._recycle)
SPARE = "spare"  # the owner of a spare directory's temp files until a process takes it
_KEEP = {"upper", "work", "rootfs", "staged-by", "stdout.log", "stderr.log", "hosts", "hostname", "resolv.conf",
         "config.json", "state.json"}
_ETC_MOUNT_POINTS = ("hosts", "hostname", "resolv.conf")

_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

_ADJECTIVES = "brave calm eager fancy gentle happy jolly keen lucky merry nimble proud quick sunny witty zen".split()
_NOUNS = "turing hopper lovelace knuth ritchie thompson torvalds perlman liskov hamilton curie noether".split()


def random_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.token_hex(2)}"


def check_name(name: str) -> str:
    if not name or name[0] in "._-" or not set(name) <= _NAME_OK or len(name) > 128:
        raise UsageError(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


class Record:
    """One container's directory."""

    def __init__(self, layout: Layout, cid: str):
        self.layout = layout
        self.id = cid
        self.dir = layout.containers / cid
        self._config: dict | None = None

    # -- paths --------------------------------------------------------------------------------
    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def stdout_log(self) -> Path:
        return self.dir / "stdout.log"

    @property
    def stderr_log(self) -> Path:
        return self.dir / "stderr.log"

    # -- data ---------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        if self._config is None:
            try:
                self._config = read_json(self.dir / "config.json")
            except FileNotFoundError:
                raise ContainerNotFound(f"No such container: {self.id[:12]}") from None
        return self._config

    @property
    def name(self) -> str:
        return self.config["name"]

    def state(self) -> State:
        try:
            return State.from_dict(read_json(self.dir / "state.json"))
        except FileNotFoundError:
            if not self.dir.exists():
                raise ContainerNotFound(f"No such container: {self.id[:12]}") from None
            return State()
        except (ValueError, KeyError):
            return State()

    def save_state(self, state: State, reserve: int = 0) -> None:
        write_json_atomic(self.dir / "state.json", state.to_dict(), reserve=reserve)

    def update_config(self, **changes) -> None:
        cfg = dict(self.config)
        cfg.update(changes)
        write_json_atomic(self.dir / "config.json", cfg)
        self._config = cfg


class Records:
    """All containers under one root."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.names = layout.root / "names"

    def stage(self, cid: str, owner: int | None = None, name: str | None = None) -> Path:
        """A container directory made ahead of time, in its final place (its root filesystem may be
        mounted from it before the container is created, so it must never move). It has no
        config.json yet, so it is no container; its ``staged-by`` file names the process that made
        it, so that prune can tell a live one from a crash's leftover.

        Everything the owner will write when the container is created and started is made here
        too, empty: the log files, the temp files of config.json and state.json, and the claim on
        a random ``name``. A spare directory (see :meth:`_recycle`) is taken when there is one: on
        ext4 under churn a new inode cost up to 0.7 ms (a 2-vCPU VM), and a container has about twenty."""
        owner = owner or os.getpid()
        staged = self.layout.containers / cid
        try:
            if self._take_spare(staged, owner):
                with open(staged / "staged-by", "w") as f:
                    f.write(str(owner))
            else:
                staged.mkdir()
                for sub in ("upper", "work", "rootfs"):
                    (staged / sub).mkdir()
                (staged / "staged-by").write_text(str(owner))
                for log in ("stdout.log", "stderr.log"):
                    os.close(os.open(staged / log, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))
            stage_json(staged / "config.json", owner)
            stage_json(staged / "state.json", owner, State().to_dict())
            if name:
                self._claim(name, cid)
        except BaseException:  # (a full disk): no half-made directory is left for prune to find
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)  # (made by this process: no user namespace needed)
            raise
        return staged

    def _take_spare(self, dest: Path, owner: int) -> bool:
        try:
            spares = os.listdir(self.layout.spare)
        except FileNotFoundError:
            return False
        for spare in spares:
            try:
                os.rename(self.layout.spare / spare, dest)
            except OSError:
                continue  # taken by another process meanwhile
            for kind in ("config", "state"):  # the owner's temp files, renamed, not made
                try:
                    os.rename(tmp_path(dest / f"{kind}.json", SPARE), tmp_path(dest / f"{kind}.json", owner))
                except FileNotFoundError:
                    pass
            return True
        return False

    def _recycle(self, trash: Path) -> bool:
        """Empty a removed container's directory and keep it in spare/ for the next one: what it
        had of its own (the write layer's files, logs, config) is gone, the inodes of its
        skeleton stay. Root only (a rootless container's files may need its user namespace).
        False when it is not kept (then the caller removes it)."""
        if os.geteuid() != 0:
            return False
        try:
            if len(os.listdir(self.layout.spare)) >= SPARES:
                return False
        except FileNotFoundError:
            self.layout.spare.mkdir(exist_ok=True)
        try:
            _empty_for_reuse(trash)
            os.rename(trash, self.layout.spare / trash.name)
        except OSError:
            return False
        return True

    def _claim(self, name: str, cid: str) -> None:
        try:
            os.symlink(cid, self.names / name)
        except FileNotFoundError:
            self.names.mkdir(parents=True, exist_ok=True)
            os.symlink(cid, self.names / name)

    def unclaim(self, name: str, cid: str) -> None:
        """Free ``name`` if it is ``cid``'s."""
        try:
            if os.readlink(self.names / name) == cid:
                os.unlink(self.names / name)
        except OSError:
            pass

    def create(self, name: str | None, config: dict, cid: str | None = None, prepare=None,
               staged: Path | None = None, staged_name: str | None = None) -> Record:
        """Claim the name, make the directory (or adopt a staged one), write config.json.

        ``prepare(record, config)`` runs before config.json is written (a record without
        config.json is garbage to prune, so a crash in between leaves nothing that looks alive).
        ``staged_name``: the random name claimed with the staged directory, used when ``name`` is
        None. No state.json yet (or the staged one): a record without one is "created"."""
        cid = cid or secrets.token_hex(32)
        if name:
            name = check_name(name)
            if staged_name:
                self.unclaim(staged_name, cid)
            staged_name = None
        if staged_name:
            name = staged_name
        else:
            name = name or random_name()
            try:
                self._claim(name, cid)
            except FileExistsError:
                other = os.readlink(self.names / name)
                raise Conflict(
                    f'the container name "{name}" is already in use by container "{other[:12]}": '
                    "remove (or rename) that container to reuse the name"
                ) from None
        rec = Record(self.layout, cid)
        try:
            if staged is None:
                rec.dir.mkdir(parents=True)
                for sub in ("upper", "work", "rootfs"):
                    (rec.dir / sub).mkdir()
            elif staged != rec.dir:
                raise ValueError(f"staged directory {staged} is not {rec.dir}")
            config = dict(config, id=cid, name=name, created=now_iso())
            config.setdefault("hostname", None)
            if not config["hostname"]:
                config["hostname"] = cid[:12]
            if prepare is not None:
                prepare(rec, config)
            write_json_atomic(rec.dir / "config.json", config)
            rec._config = config
        except BaseException:
            self.delete(rec, name)
            raise
        return rec

    def hide(self, rec: Record) -> None:
        """An --rm container whose command has exited: out of every listing and its name free at
        once, as docker's ``run --rm`` returns only once the container is gone. Its directory goes
        at the cleanup (:meth:`delete`, which ``rec``'s cached config still serves)."""
        config = rec.config
        self.unclaim(config["name"], rec.id)
        try:
            os.rename(rec.dir / "config.json", tmp_path(rec.dir / "config.json"))
        except OSError:
            pass

    def delete(self, rec: Record, name: str | None = None, later: list | None = None) -> None:
        """Remove the container's directory and free its name (idempotent). With ``later``, the
        container is gone for every verb once this returns (its name free, its directory renamed
        to tmp/rm-<id>, which garbage collection knows), and the emptying of that directory is
        appended to ``later`` for the caller to run when it has answered its client."""
        if name is None:
            try:
                name = rec.name
            except ContainerNotFound:
                name = None
        if name:
            self.unclaim(name, rec.id)
        try:
            config = rec.config
        except (ContainerNotFound, OSError, ValueError):
            config = None
        if config is not None:  # a notebook cell's files go with their container
            from .cellfiles import remove_for

            remove_for(self.layout, config)
        # rename first so that a crash mid-delete leaves a directory prune knows is garbage
        trash = self.layout.tmp / f"rm-{rec.id}"
        try:
            os.rename(rec.dir, trash)
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            trash = rec.dir
        if later is not None:
            later.append(lambda: self._dispose(trash))
        else:
            self._dispose(trash)

    def _dispose(self, trash: Path) -> None:
        if self._recycle(trash):
            return
        from ..linux import userns  # a rootless container's files may need its user namespace

        userns.rmtree(trash)

    def get(self, ref: str) -> Record:
        """By name, full id, or unique id prefix."""
        if not ref:
            raise ContainerNotFound("No such container: ''")
        try:
            cid = os.readlink(self.names / ref)
            rec = Record(self.layout, cid)
            if rec.dir.exists():
                return rec
        except OSError:
            pass
        if all(c in "0123456789abcdef" for c in ref):
            if len(ref) == 64 and (self.layout.containers / ref).exists():
                return Record(self.layout, ref)
            try:
                matches = [d for d in os.listdir(self.layout.containers) if d.startswith(ref)]
            except FileNotFoundError:
                matches = []
            if len(matches) == 1:
                return Record(self.layout, matches[0])
            if len(matches) > 1:
                raise Conflict(f"multiple containers match the prefix {ref!r}: use more characters")
        raise ContainerNotFound(f"No such container: {ref}")

    def all(self) -> list[Record]:
        try:
            ids = os.listdir(self.layout.containers)
        except FileNotFoundError:
            return []
        out = []
        for cid in ids:
            rec = Record(self.layout, cid)
            try:
                rec.config
            except (ContainerNotFound, json.JSONDecodeError, OSError):
                continue  # half-created: prune removes it
            out.append(rec)
        out.sort(key=lambda r: r.config.get("created", ""), reverse=True)
        return out


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _empty_dir(path: str, keep=()) -> None:
    for entry in os.listdir(path):
        if entry not in keep:
            _remove(os.path.join(path, entry))


def _empty_for_reuse(cdir: Path) -> None:
    """What a new container may find of an old one's directory: empty logs, an empty write layer
    but for /etc's mount points (a plain root-owned 0755 directory, no overlay xattrs), an empty
    overlay work dir, and its config and state temp files emptied. Everything else goes."""
    d = str(cdir)
    for entry in os.listdir(d):
        if entry not in _KEEP and not entry.endswith(".tmp"):
            _remove(os.path.join(d, entry))
    for sub in ("upper", "work", "rootfs"):
        p = os.path.join(d, sub)
        if os.path.islink(p) or not os.path.isdir(p):
            raise OSError(f"{p} is not a directory")
    upper = os.path.join(d, "upper")
    _empty_dir(upper, keep=("etc",))
    _strip_overlay_xattrs(upper)
    etc = os.path.join(upper, "etc")
    if os.path.isdir(etc) and not os.path.islink(etc):
        _empty_dir(etc, keep=_ETC_MOUNT_POINTS)
        for name in _ETC_MOUNT_POINTS:
            p = os.path.join(etc, name)
            if os.path.lexists(p) and (os.path.islink(p) or not os.path.isfile(p)):
                _remove(p)
        _strip_overlay_xattrs(etc)
        os.chown(etc, 0, 0)
        os.chmod(etc, 0o755)
    elif os.path.lexists(etc):
        _remove(etc)
    _empty_dir(os.path.join(d, "work"))
    _empty_dir(os.path.join(d, "rootfs"))
    # one inode for the next owner's config.json temp file (config.json itself must go: a spare
    # is no container), state.json and one for its temp file
    temps = {"config": [], "state": []}
    for entry in sorted(os.listdir(d)):
        if entry.endswith(".tmp"):  # tmp_path()'s: .config.json.<owner>.tmp
            kind = next((k for k in temps if entry.startswith(f".{k}.json.")), None)
            if kind is not None:
                temps[kind].append(entry)
            else:
                _remove(os.path.join(d, entry))
    if os.path.exists(os.path.join(d, "config.json")):
        temps["config"].append("config.json")
    for kind, names in temps.items():
        for i, entry in enumerate(names):
            p = os.path.join(d, entry)
            if i:
                os.unlink(p)
            else:
                os.truncate(p, 0)
                os.rename(p, tmp_path(cdir / f"{kind}.json", SPARE))
    # staged-by too: a spare taken by a process killed before it wrote its pid is garbage to prune
    for entry in ("stdout.log", "stderr.log", "hosts", "hostname", "resolv.conf", "state.json", "staged-by"):
        p = os.path.join(d, entry)
        if os.path.isfile(p) and not os.path.islink(p):
            os.truncate(p, 0)


def _strip_overlay_xattrs(path: str) -> None:
    """An upper directory marked opaque (or redirected) would hide the image's own next time."""
    for name in os.listxattr(path, follow_symlinks=False):
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            os.removexattr(path, name, follow_symlinks=False)
