"""The ``--mount`` options of one RUN step, made into the container's mounts.

:class:`RunMounts` works in three moments:

1. **planned** before the cache lookup: each mount expanded and checked (:mod:`.mounts`), and what
   the step's cache key takes from it: the spec, and for a bind mount the content it shows (paths,
   types, modes, sizes, file digests: a changed context file reruns the step, a changed stage that
   still gives the same files does not). Caches and secrets count by name only (BuildKit's rule);
2. **made** when the step runs: a bind of the context (the directory itself when nothing of it is
   excluded and it is read-only; else a tree of hard links, or of copies when writable, in the
   store's tmp/), a stage's files (the same tree, from its layers), a cache directory
   (:mod:`.cachemounts`), a tmpfs, a secret file (:mod:`.secrets`) or a secret variable;
3. **cleaned** after it: the mount points the runtime had to create (``/run/secrets``,
   ``/root/.cache/pip`` ...) are taken out of the step's upper directory when they are still empty,
   as BuildKit's mount stub cleaner does, so the layer holds what the command wrote and nothing of
   the mounts; then the trees and files made in 2 are removed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import shutil
import stat
import tempfile

from ..image import markers
from .context import ContextFS, ImageFS, SourceFS, normalize
from .mounts import MountError, MountSpec, parse_mount
from .secrets import write_secret


def _target(spec: MountSpec, workdir: str) -> str:
    target = spec.target if spec.target.startswith("/") else posixpath.join("/", workdir, spec.target)
    target = posixpath.normpath(target)
    if target.startswith("//"):
        target = "/" + target.lstrip("/")
    if target == "/":
        raise MountError(f'invalid mount target "{target}"')
    if ":" in target:  # the runtime's -v/--tmpfs syntax cannot carry it
        raise MountError(f'mount target "{target}": a ":" in a target is not supported by jupybox build')
    return target


def _source_rel(fs: SourceFS, source: str) -> tuple[str, os.stat_result]:
    """The source path inside ``fs`` (symlinks followed inside it), and its stat."""
    rel = normalize(posixpath.normpath("/" + source))
    rel = fs.resolve(rel) if rel else rel
    st = fs.lstat(rel)
    if st is None:
        where = f"{fs.name} or excluded by .dockerignore" if isinstance(fs, ContextFS) else fs.name
        raise MountError(f"mount source {source!r} not found in the {where}")
    return rel, st


class RunMounts:
    def __init__(self, b, ctx, instr, env: dict[str, str]):
        self.b = b
        self.ctx = ctx
        self.instr = instr
        self.plans: list[tuple[MountSpec, str, object, object]] = []  # (spec, target, source fs, its key)
        self.key: list = []
        self.binds: list[str] = []  # "SRC:DST[:ro]" for the runner
        self.tmpfs: list[str] = []  # "DST:OPTIONS"
        self.env: dict[str, str] = {}
        self._handles: list = []
        self._paths: list[str] = []  # made here, removed by release()
        self._stubs: list[tuple[list[str], bool]] = []  # (paths from the top, a file mount)
        workdir = ctx.state.cfg.get("WorkingDir") or "/"
        specs = []
        for raw in instr.mounts:
            try:
                spec = parse_mount(raw, lambda word: b._expand(instr, word, env))
                # a secret's file (when it has one) goes to /run/secrets/ID by default
                target = _target(spec, workdir) if spec.type in ("bind", "cache", "tmpfs") or spec.target else ""
                specs.append((spec, target))
            except MountError as e:
                raise instr.error(f"{instr.text}: {e}") from None
        # a mount inside another comes after it (the order the runtime mounts them in)
        specs.sort(key=lambda st: st[1].count("/"))
        for spec, target in specs:
            try:
                self._plan(spec, target)
            except (MountError, ValueError) as e:
                raise instr.error(f"{instr.text}: {e}") from None

    # ---------------------------------------------------------------- 1. planned
    def _plan(self, spec: MountSpec, target: str) -> None:
        b = self.b
        src_fs = None
        content = None
        if spec.type == "ssh":
            raise MountError("type=ssh is not supported: jupybox build forwards no SSH agent (use a "
                             "secret mount for a key, or clone the repository into the context)")
        if spec.type == "bind":
            if spec.from_:
                src_fs, _ = b.source_fs(self.ctx, self.instr, spec.from_)
            else:
                src_fs = b.context
            rel, _ = _source_rel(src_fs, spec.source)
            content = self._digest(src_fs, rel)
        elif spec.type == "cache" and spec.from_:
            src_fs, from_id = b.source_fs(self.ctx, self.instr, spec.from_)
            content = from_id
        elif spec.type == "secret":
            sid = spec.source or spec.id or posixpath.basename(spec.target)
            if sid not in b.secrets and spec.required:
                raise MountError(f"secret {sid}: not found")
        self.plans.append((spec, target, src_fs, content))
        self.key.append(spec.key() + [target, content])

    def _digest(self, fs: SourceFS, rel: str) -> str:
        """What a bind of ``rel`` shows, as a digest (see the module doc)."""
        from ..image.digest import sha256_file
        from .copier import file_key

        h = hashlib.sha256()
        st = fs.lstat(rel) if rel else None
        entries = [(rel, st)] if st is not None and not stat.S_ISDIR(st.st_mode) else list(fs.walk(rel))
        cache = self.b.hashes if isinstance(fs, ContextFS) else None
        memo = self.b.file_digests
        for path, st in entries:
            m = st.st_mode
            rec = [path[len(rel):], stat.S_IFMT(m), stat.S_IMODE(m), st.st_uid, st.st_gid]
            if stat.S_ISREG(m):
                digest = cache.get(path, file_key(st)) if cache is not None else None
                if digest is None:
                    host = fs.host_path(path)
                    digest = memo.get(host)
                    if digest is None:
                        digest = sha256_file(host)[0]
                        memo[host] = digest
                        if cache is not None:
                            cache.put(path, file_key(st), digest)
                rec += [st.st_size, digest]
            elif stat.S_ISLNK(m):
                rec.append(fs.readlink(path))
            h.update(json.dumps(rec).encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()

    # ---------------------------------------------------------------- 2. made
    def make(self) -> None:
        """Everything the mounts need; :meth:`release` undoes it (also after an error)."""
        fs = self.b.image_fs(self.ctx.state)
        for spec, target, src_fs, content in self.plans:
            if spec.type == "bind":
                rel, st = _source_rel(src_fs, spec.source)
                src = self._bind_source(src_fs, rel, st, spec.readonly)
                self.binds.append(f"{src}:{target}" + (":ro" if spec.readonly else ""))
                self._stub(fs, target, is_file=not stat.S_ISDIR(st.st_mode))
            elif spec.type == "cache":
                self.binds.append(f"{self._cache(spec, src_fs, content)}:{target}")
                self._stub(fs, target)
            elif spec.type == "tmpfs":
                opts = ["mode=1777"] + ([f"size={spec.size}"] if spec.size else [])
                self.tmpfs.append(f"{target}:{','.join(opts)}")
                self._stub(fs, target)
            elif spec.type == "secret":
                self._secret(fs, spec, target)

    def _tmpdir(self) -> str:
        tmp = str(self.b.store.tmp)
        os.makedirs(tmp, exist_ok=True)
        path = tempfile.mkdtemp(prefix="layer-mount-", dir=tmp)
        self._paths.append(path)
        return path

    def _bind_source(self, fs: SourceFS, rel: str, st: os.stat_result, readonly: bool) -> str:
        if isinstance(fs, ContextFS) and readonly and not fs.matcher:
            host = fs.host_path(rel)
            if ":" not in host:
                return host  # the context itself: nothing to hide, nothing to write
        tree = self._tmpdir()
        dest = os.path.join(tree, "root")
        _copy_tree(fs, rel, st, dest, link=readonly)
        return dest

    def _cache(self, spec: MountSpec, src_fs, from_id) -> str:
        b = self.b
        seed = seed_key = None
        source = normalize(posixpath.normpath("/" + spec.source))
        if src_fs is not None:
            rel, st = _source_rel(src_fs, spec.source)

            def seed(path: str) -> None:
                _copy_tree(src_fs, rel, st, path, link=False, into=True)

            seed_key = f"{from_id}:{rel}"
            source = ""  # the seed is already the source
        handle = b.cache_mounts.acquire(spec.id or posixpath.normpath(spec.target), spec.sharing or "shared",
                                        spec.uid or 0, spec.gid or 0, 0o755 if spec.mode is None else spec.mode,
                                        seed=seed, seed_key=seed_key, no_cache=b.no_cache)
        self._handles.append(handle)
        return _inside(handle.path, source) if source else handle.path

    def _secret(self, fs: ImageFS, spec: MountSpec, target: str) -> None:
        b = self.b
        sid = spec.source or spec.id or posixpath.basename(spec.target)
        value = b.secrets.get(sid)
        if value is None:
            return  # optional and not given: no file, no variable (BuildKit)
        if spec.env is not None:
            self.env[spec.env] = value.decode("utf-8", "surrogateescape")
        if spec.env is not None and not spec.target:
            return
        target = target or "/run/secrets/" + posixpath.basename(sid)
        mode = 0o400 if spec.mode is None else spec.mode
        path = write_secret(value, spec.uid or 0, spec.gid or 0, mode, str(b.store.tmp))
        self._paths.append(path)
        self.binds.append(f"{path}:{target}:ro")
        self._stub(fs, target, is_file=True)

    def _stub(self, fs: ImageFS, target: str, is_file: bool = False) -> None:
        """Remember the path components the runtime will create for ``target``."""
        try:
            rel = fs.resolve(normalize(target))
        except OSError:
            return
        parts = rel.split("/")
        for i in range(len(parts)):
            if fs.lstat("/".join(parts[:i + 1])) is None:
                self._stubs.append((["/".join(parts[:j + 1]) for j in range(i, len(parts))], is_file))
                return

    # ---------------------------------------------------------------- 3. cleaned
    def clean_stubs(self, upper: str, fs: ImageFS) -> None:
        """Take the mount points out of the step's upper directory (see the module doc)."""
        for paths, is_file in reversed(self._stubs):
            for i, rel in enumerate(reversed(paths)):
                p = os.path.join(upper, rel)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode) and not os.listdir(p) and not markers.is_opaque(p):
                    os.rmdir(p)
                elif i == 0 and is_file and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(p)
                else:
                    break  # the command put something there: it stays
            else:
                _drop_copied_up(upper, fs, posixpath.dirname(paths[0]))

    def release(self) -> None:
        for h in self._handles:
            h.release()
        self._handles = []
        for p in self._paths:
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    from ..image.layer import remove_tree

                    remove_tree(p)
                else:
                    os.unlink(p)
            except FileNotFoundError:
                pass
        self._paths = []


def _drop_copied_up(upper: str, fs: ImageFS, rel: str) -> None:
    """Directories the runtime's mkdir copied up on the way to a stub, now empty and as in the
    image (mode, owner; not opaque): without them the layer is what the command did."""
    while rel:
        p = os.path.join(upper, rel)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        img = fs.lstat(rel)
        if (img is None or not stat.S_ISDIR(st.st_mode) or not stat.S_ISDIR(img.st_mode) or os.listdir(p)
                or markers.is_opaque(p) or stat.S_IMODE(st.st_mode) != stat.S_IMODE(img.st_mode)
                or (markers.privileged() and (st.st_uid, st.st_gid) != (img.st_uid, img.st_gid))):
            return
        os.rmdir(p)
        rel = posixpath.dirname(rel)


def _inside(root: str, rel: str) -> str:
    """``root/rel`` for a cache's ``source=``: made when missing, never through a symlink (a
    link in a cache could point anywhere on the host)."""
    path = root
    for part in rel.split("/"):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise MountError(f"cache mount source {rel!r}: {part!r} is not a directory in the cache "
                             f"(symlinks are not followed)")
    return path


def _copy_tree(fs: SourceFS, rel: str, st: os.stat_result, dest: str, link: bool, into: bool = False) -> None:
    """``fs``'s ``rel`` at ``dest`` (a file or a tree; ``into``: the contents into the existing
    directory ``dest``), with hard links where ``link`` allows, else copies."""
    chown = markers.privileged()

    def one(path: str, st: os.stat_result, out: str) -> None:
        m = st.st_mode
        if stat.S_ISDIR(m):
            os.mkdir(out, 0o700)
        elif stat.S_ISLNK(m):
            os.symlink(fs.readlink(path), out)
        elif stat.S_ISREG(m):
            host = fs.host_path(path)
            if link:
                try:
                    os.link(host, out, follow_symlinks=False)
                    return  # the inode's own mode and owner
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
            shutil.copyfile(host, out, follow_symlinks=False)
        elif stat.S_ISFIFO(m):
            os.mkfifo(out, 0o600)
        else:
            return  # devices and sockets: not in a build mount
        if chown:
            os.chown(out, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(m):
            os.chmod(out, stat.S_IMODE(m))

    dirs = []
    if not stat.S_ISDIR(st.st_mode):
        one(rel, st, dest)
        return
    if not into:
        one(rel, st, dest)
        os.chmod(dest, 0o700)
        dirs.append((dest, st))
    for path, cst in fs.walk(rel):
        out = os.path.join(dest, path[len(rel) + 1:] if rel else path)
        one(path, cst, out)
        if stat.S_ISDIR(cst.st_mode):
            os.chmod(out, 0o700)  # writable while it is filled
            dirs.append((out, cst))
    for out, dst in reversed(dirs):
        os.chmod(out, stat.S_IMODE(dst.st_mode))
