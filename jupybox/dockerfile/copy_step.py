"""The COPY and ADD steps: sources from the context, a stage or an image (:mod:`.sources`),
planned into a layer (:mod:`.copier`), with ADD's archives and URLs (:mod:`.add_sources`)."""

from __future__ import annotations

import os
import re
import stat

from . import add_sources, copier
from . import sources as sources_mod
from .cache import make_key
from .expand import ExpandError, Lexer
from .instructions import CopyInstr
from .state import StageCtx


def do_copy(b, ctx: StageCtx, instr: CopyInstr):
    env = b._step_env(ctx)
    name = "ADD" if instr.is_add else "COPY"
    sources = [b._expand(instr, s, env) for s in instr.sources]
    dest = b._expand(instr, instr.dest, env)
    chown = b._expand(instr, instr.chown, env) if instr.chown else None
    chmod = b._expand(instr, instr.chmod, env) if instr.chmod else None
    mode = sources_mod.parse_chmod(chmod) if chmod else None
    fs = b.image_fs(ctx.state)
    owner = sources_mod.user_ids(chown, fs) if chown else None
    workdir = ctx.state.cfg.get("WorkingDir") or "/"
    planner = copier.Planner(fs, workdir, owner, mode, hashes=b.hashes)
    key_extra: list = [name, dest, owner, chmod, workdir]
    nsrc = len(sources) + len(instr.inline)
    from_id = None
    if instr.from_:
        frm = b._expand(instr, instr.from_, env)
        src_fs, from_id = b.source_fs(ctx, instr, frm)
        key_extra.append(from_id)
        found = sources_mod.resolve_sources(src_fs, sources, name)
        kind = _summary_kind(nsrc, found)
        planner.copy(src_fs, found, dest, keep_owner=True)
        planner.plan.extra.append("from:" + from_id)
        for s in found:
            planner.plan.extra.append(f"src:{s.given}")
        for e in planner.plan.entries:
            if e.kind == "file":
                e.digest = "from-image"  # the source image id covers the content
    else:
        local: list[str] = []
        downloads = []
        for s in sources:
            is_url = re.match(r"^[a-z][a-z0-9+.-]*://", s) is not None
            if is_url and not instr.is_add:
                raise ValueError(f"source can't be a URL for COPY (use ADD): {s}")
            if instr.is_add and add_sources.is_git_url(s):
                raise ValueError(f"{s} is a git repository: ADD of a git source is not supported by jupybox "
                                 f"build (it runs no git client); clone it into the build context and COPY it")
            if instr.is_add and re.match(r"^https?://", s):
                downloads.append(s)
            elif instr.is_add and is_url:
                raise ValueError(f"{name} source {s!r}: only http(s) URLs are supported")
            else:
                local.append(s)
        if instr.checksum:
            if len(sources) != 1:
                raise ValueError("checksum can't be specified for multiple sources")
            if not downloads:
                raise ValueError("checksum requires HTTP(S) or Git sources")
        found = sources_mod.resolve_sources(b.context, local, name) if local else []
        kind = _summary_kind(nsrc, found)
        if len(found) + len(downloads) + len(instr.inline) > 1 and not dest.endswith("/"):
            raise ValueError(f"When using {name} with more than one source file, the destination must be a "
                             f"directory and end with a /")
        archives = []
        plain = []
        for s in found:
            if instr.is_add and stat.S_ISREG(s.st.st_mode) and add_sources.is_archive(b.context.host_path(s.rel)):
                archives.append(s)
            else:
                plain.append(s)
        if plain:
            planner.copy(b.context, plain, dest)
        for doc in instr.inline:
            data = doc.text()
            if doc.expand:
                try:
                    # BuildKit's rule for bodies: the escape is always "\\" and is removed
                    # ("\\$HOME" → "$HOME", "\\\\" → "\\"), whatever "# escape=" says
                    data = Lexer("\\").process(data, env, skip_quotes=True).word
                except ExpandError as e:
                    raise ValueError(str(e)) from None
            planner.inline(doc.name, data.encode(), dest)
        tmp_paths: list[str] = []
        try:
            for url in downloads:
                path, fname, mtime, digest = add_sources.download(url, b.store, instr.checksum)
                tmp_paths.append(path)
                planner.download(path, fname, dest, mtime, digest)
                planner.plan.extra.append(f"url:{url}:{digest}")
            for s in archives:
                p = b.context.host_path(s.rel)
                digest = b.hashes.get(s.rel, copier.file_key(s.st)) if s.rel else None
                if digest is None:
                    from ..image.digest import sha256_file

                    digest = sha256_file(p)[0][7:]
                    b.hashes.put(s.rel, copier.file_key(s.st), digest)
                planner.plan.extra.append(f"archive:{s.given}:{digest}:{dest}")
                planner.archive_dest(dest)
                planner.plan.archives.append((p, dest))
            return _copy_finish(b, ctx, instr, planner, key_extra, kind)
        finally:
            for p in tmp_paths:
                try:
                    os.unlink(p)
                except OSError:
                    pass
    return _copy_finish(b, ctx, instr, planner, key_extra, kind)


def _summary_kind(nsrc: int, found) -> str:
    if nsrc > 1 or len(found) > 1:
        return "multi"
    if found and stat.S_ISDIR(found[0].st.st_mode):
        return "dir"
    return "file"


def _copy_finish(b, ctx: StageCtx, instr: CopyInstr, planner, key_extra: list, kind: str):
    plan = planner.plan
    csum = copier.checksum(plan)
    if csum is not None:
        key = make_key([ctx.state.id, *key_extra, csum])
        hit = b.cached(key)
        if hit is not None:
            return hit, True
    trees = []
    try:
        for path, dest in plan.archives:
            tree = add_sources.extract_archive(b.store, path)
            trees.append(tree)
            planner.archive(tree, dest)
        writer, csum = copier.write_layer(b.store, plan, b.hashes)
        with writer:
            key = make_key([ctx.state.id, *key_extra, csum])
            hit = b.cached(key)
            if hit is not None:
                return hit, True  # e.g. only mtimes changed: the earlier layer stays
            layer = writer.commit() if plan.entries else None
    finally:
        from ..image.layer import remove_tree

        for t in trees:
            remove_tree(t)
    what = "ADD" if instr.is_add else "COPY"
    new = b.commit(ctx, f"/bin/sh -c #(nop) {what} {kind}:{csum} in {instr.dest} ", layer=layer)
    b.remember(key, new)
    return new, False
