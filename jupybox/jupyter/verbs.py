"""``%container VERB``: any jupybox CLI verb in a notebook, through the CLI's own parser.

Verbs a notebook shows better get a rich answer (HTML tables that return the Python objects, a
collapsible JSON view, a Container handle, output streamed into the cell); every other verb runs
through ``jupybox.cli.execute`` with its text printed into the cell. A rich verb returns
NotImplemented to fall back to the CLI's text (``ps -q``, ``--format``).
"""

from __future__ import annotations

import io
import os
import shlex
import sys
import threading
import time

from IPython.core.error import UsageError as IPythonUsageError

from .. import errors
from .cellrunner import CellRun
from .chartsession import container_name
from .monitor import chart_self, monitor

VERB_HELP = """\
%container VERB [ARGS...]    any jupybox CLI verb, through the CLI's parser:
  ps [-a], images, history IMAGE, volume ls, stats      HTML tables (return Python objects)
  inspect NAME...                                       a collapsible JSON view (returns the dicts)
  run -d IMAGE CMD..., create, start NAME               return a Container
  run IMAGE CMD...                                      streams into the cell, like %%container
  exec NAME CMD..., logs [-f] NAME, stop, kill, rm, wait, pull, push, tag, rmi, volume ..., info
  monitor NAME [--rate HZ]                              live chart of a running container until it
                                                        stops (or the cell is interrupted)
"""


class Verbs:
    """The verbs of one ``%container`` line, with the settings of ``magics`` (a JupyboxMagics)."""

    def __init__(self, magics):
        self.magics = magics

    def __call__(self, line: str):
        try:
            argv = shlex.split(line)
        except ValueError as e:
            raise IPythonUsageError(f"%container: {e}") from None
        if not argv or argv[0] in ("-h", "--help", "help"):
            from ..cli.parser import build

            print(VERB_HELP)
            print(build(prog="%container").format_help())
            return None
        root = self.magics.root
        words = list(argv)
        while words and words[0].startswith("--root"):
            if words[0] == "--root" and len(words) > 1:
                root, words = words[1], words[2:]
            elif words[0].startswith("--root="):
                root, words = words[0].split("=", 1)[1], words[1:]
            else:
                break
        if words and words[0] == "monitor":
            return monitor(self.magics, words[1:], root)
        if words and words[0] == "self":
            return chart_self(self.magics, words[1:])
        if words and words[0] == "last":
            return self.magics.last
        from ..cli.parser import _HelpShown, build, parse

        parser = build(prog="%container")
        try:
            args = parse(parser, words)
        except _HelpShown:
            return None
        verb = args.verb
        if verb == "image" and getattr(args, "image_verb", None) in ("ls", "inspect"):
            verb = f"image_{args.image_verb}"
        if verb == "volume" and getattr(args, "volume_verb", None) in ("ls", "inspect"):
            verb = f"volume_{args.volume_verb}"
        handler = getattr(self, f"_v_{verb}", None)
        if handler is not None:
            result = handler(args, root, words)
            if result is not NotImplemented:
                return result
        return self._cli(words, root)

    def _ctx(self, root, out=None, err=None):
        from ..cli import Context

        return Context(root, out=out or io.StringIO(), err=err or io.StringIO())

    def _cli(self, words: list[str], root):
        """Any verb through ``jupybox.cli.execute``; its output printed into the cell."""
        from ..cli import execute

        ctx = self._ctx(root)
        try:
            code = execute(words, ctx)
        finally:
            out, err = ctx.out.getvalue(), ctx.err.getvalue()
            if out:
                sys.stdout.write(out)
                sys.stdout.flush()
            if err:
                sys.stderr.write(err)
                sys.stderr.flush()
        if code:
            print(f"(exit status {code})", file=sys.stderr)
        return None

    def _engine(self, root):
        from ..api import engine

        return engine(root)

    def _handle(self, name: str, root):
        """A Container whose verbs go through the store's service (the kernel never forks)."""
        from ..api import container

        return container(name, root=root)

    def _v_ps(self, args, root, words):
        from ..cli.containers import ps_rows
        from .display import ObjectList

        if args.quiet or args.format:
            return NotImplemented
        rows = ps_rows(self._engine(root), args.all)
        for r in rows:
            r["ShortID"] = r["ID"] if args.no_trunc else r["ID"][:12]
            r["Created"] = f"{r['RunningFor']} ago"
        from .cellrunner import CELL_LABEL

        items, shown = [], []
        for r in rows:
            try:
                c = self._handle(r["ID"], root)
                label = (c.config["spec"].get("labels") or {}).get(CELL_LABEL)
            except errors.JupyboxError:
                continue
            if label:  # a cell's container: the cell, not the runner's command line
                r["Command"] = label
            items.append(c)
            shown.append(r)
        rows = shown
        # a notebook is narrow: long columns are clipped (the whole text in their tooltip), names never
        cols = [("ShortID", "CONTAINER ID"), ("Image", "IMAGE", 24), ("Command", "COMMAND", 32),
                ("Created", "CREATED"), ("Status", "STATUS", 28), ("Names", "NAMES")]
        return ObjectList(items, rows, cols, empty="no containers" + ("" if args.all else " running (ps -a: all)"))

    def _v_images(self, args, root, words):
        from ..cli.images import image_rows
        from .display import ObjectList

        if args.quiet or args.format:
            return NotImplemented
        store = self._engine(root).store
        rows = image_rows(store)
        for r in rows:
            r["ShortID"] = r["ID"] if args.no_trunc else r["ID"].split(":")[-1][:12]
        cols = [("Repository", "REPOSITORY"), ("Tag", "TAG")] + ([("Digest", "DIGEST")] if args.digests else []) + [
            ("ShortID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE")]
        return ObjectList(store.list(), rows, cols, empty="no images")

    _v_image_ls = _v_images

    def _v_history(self, args, root, words):
        from ..cli.format import ago
        from ..runtime.container import age as _age
        from ..units import human_size_si
        from .display import Table

        if args.quiet or args.format:
            return NotImplemented
        img = self._engine(root).store.resolve(args.image)
        rows = []
        for i, h in enumerate(img.history()):
            created_by = h.get("created_by", "")
            rows.append({
                "ID": img.short_id if i == 0 else "<missing>",
                "Created": f"{ago(_age(h.get('created', '')))} ago" if h.get("created") else "N/A",
                "CreatedBy": created_by if args.no_trunc else created_by[:60],
                "Size": human_size_si(h.get("size") or 0), "Comment": h.get("comment", ""),
            })
        return Table(rows, [("ID", "IMAGE"), ("Created", "CREATED"), ("CreatedBy", "CREATED BY"), ("Size", "SIZE"),
                            ("Comment", "COMMENT")], empty="no history")

    def _v_volume_ls(self, args, root, words):
        from ..runtime.volumes import Volumes
        from .display import ObjectList

        if args.quiet or args.format:
            return NotImplemented
        vols = Volumes(self._engine(root).layout).list()
        rows = [{"Driver": "local", "Name": v.name, "Mountpoint": str(v.data)} for v in vols]
        return ObjectList(vols, rows, [("Driver", "DRIVER"), ("Name", "VOLUME NAME")], empty="no volumes")

    def _v_stats(self, args, root, words):
        from ..cli.containers import stats_row
        from .display import Table

        if args.format:
            return NotImplemented
        eng = self._engine(root)
        if args.containers:
            recs = [eng.records.get(n) for n in args.containers]
        else:
            recs = [r for r in eng.records.all() if eng.reconcile(r).status.value == "running"]

        def sample():
            out = {}
            for rec in recs:
                try:
                    out[rec.id] = (rec, eng.stats(rec))
                except errors.JupyboxError:
                    continue
            return out

        first = sample()
        if first:
            time.sleep(0.25)  # two samples for a CPU rate, as `jupybox stats --no-stream`
        second = sample()
        rows = [stats_row(rec, st, first.get(cid, (None, None))[1]) for cid, (rec, st) in second.items()]
        return Table(rows, [("ID", "CONTAINER ID"), ("Name", "NAME"), ("CPUPerc", "CPU %"), ("MemUsage", "MEM USAGE / LIMIT"),
                            ("MemPerc", "MEM %"), ("PIDs", "PIDS")], empty="no running containers")

    def _v_inspect(self, args, root, words):
        from ..cli.containers import cmd_inspect
        from .display import JSONView

        if args.format:
            return NotImplemented
        import json

        ctx = self._ctx(root)
        cmd_inspect(args, ctx)
        return JSONView(json.loads(ctx.out.getvalue()))

    def _v_image_inspect(self, args, root, words):
        from .display import JSONView

        store = self._engine(root).store
        return JSONView([store.resolve(r).inspect() for r in args.images])

    def _v_volume_inspect(self, args, root, words):
        from ..runtime.volumes import Volumes
        from .display import JSONView

        vols = Volumes(self._engine(root).layout)
        return JSONView([vols.get(n).inspect() for n in args.names])

    def _v_create(self, args, root, words):
        self._cli(words, root)
        from ..api import engine

        recs = engine(root).records.all()
        newest = max(recs, key=lambda r: r.config.get("created", ""), default=None)
        return self._handle(newest.id, root) if newest is not None else None

    def _v_start(self, args, root, words):
        if args.attach or args.interactive:
            raise IPythonUsageError("%container start: -a/-i are not supported in a notebook; "
                                    "use %container logs -f NAME or %container monitor NAME")
        out = []
        for name in args.containers:
            c = self._handle(name, root)
            c.start()
            print(name)
            out.append(c)
        return out[0] if len(out) == 1 else out

    def _v_run(self, args, root, words):
        from ..cli.run import options_from_args

        options = options_from_args(args)
        for key in ("interactive", "tty"):
            options.pop(key, None)
        if args.detach:
            import jupybox
            from ..paths import Layout
            from ..runtime import mode

            m = mode.detect(str(Layout(root).ensure().tmp))
            if not m.isolated:
                raise errors.UsageError(f"-d needs isolation, and no container can run here ({m.reason})")
            c = jupybox.run(args.image, args.command or None, root=root, detach=True, **options)
            print(c.id)
            return c
        run = CellRun(image=args.image, command=args.command, cell=None, options=options, user_ns=self.magics._user_ns(),
                      keep=not args.remove and bool(args.name), chart=self.magics.chart, live=self.magics._live(),
                      summary=self.magics.summary, rate=self.magics.chart_rate, grace=self.magics.interrupt_grace, root=root,
                      chart_after=self.magics.chart_after)  # (a quick run: its summary only, as a cell's)
        self.magics.last = run
        return run.run()

    def _v_exec(self, args, root, words):
        from ..runtime.options import parse_env, read_env_file
        from .cellstreams import pump

        if args.detach or args.interactive:
            raise IPythonUsageError("%container exec: -d/-i are not supported in a notebook")
        if not args.command:
            raise IPythonUsageError("%container exec: a command is required")
        c = self._handle(args.container, root)
        env = {}
        for path in args.env_file:
            env.update(read_env_file(path))
        env.update(parse_env(args.env))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        import contextvars

        readers = [threading.Thread(target=contextvars.copy_context().run, args=(pump, fd, stream), daemon=True)
                   for fd, stream in ((out_r, sys.stdout), (err_r, sys.stderr))]
        for t in readers:
            t.start()
        try:
            code = c.exec(args.command, env=env, workdir=args.workdir, user=args.user, stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
            for t in readers:
                t.join(10)
        if code:
            raise errors.ContainerError(f"exec in {container_name(c)} exited with code {code}", code, c)
        return None

    def _v_logs(self, args, root, words):
        from .outputcap import SAVED

        try:
            c = self._handle(args.container, root)
            paths = c.log_paths()
        except errors.ContainerNotFound:
            paths = SAVED.paths(args.container)  # a capped cell's full output, its container gone
            if paths is None:
                raise
            c = None
        tail = None if args.tail == "all" else int(args.tail)
        files = []
        for path, stream in zip(paths, (sys.stdout, sys.stderr)):
            try:
                f = open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue
            data = f.read()
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            stream.write(data.decode(errors="replace"))
            stream.flush()
            files.append((f, stream))
        try:
            while args.follow and c is not None:
                moved = False
                for f, stream in files:
                    data = f.read()
                    if data:
                        stream.write(data.decode(errors="replace"))
                        stream.flush()
                        moved = True
                if not moved:
                    try:
                        if c.status != "running":
                            break
                    except errors.JupyboxError:
                        break
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass  # stop following; the container goes on
        finally:
            for f, _ in files:
                f.close()
        return None

    def _with_progress(self, verb: str, args, root, transfer):
        """``transfer(store, progress)`` under a progress display of ``verb`` (pull, push)."""
        from .display import pull_progress

        progress = pull_progress(f"{verb} {args.reference}", args.quiet)
        try:
            return transfer(self._engine(root).store, progress)
        finally:
            if hasattr(progress, "close"):
                progress.close()

    def _v_pull(self, args, root, words):
        from ..registry import pull

        img = self._with_progress("pull", args, root, lambda store, progress: pull(
            store, args.reference, platform=args.platform, progress=progress, authfile=args.authfile,
            insecure_registries=args.insecure_registry))
        print(f"Status: Downloaded image for {args.reference} ({img.manifest_digest})")
        return img

    def _v_push(self, args, root, words):
        from ..registry import push

        digest = self._with_progress("push", args, root, lambda store, progress: push(
            store, args.reference, progress=progress, authfile=args.authfile,
            insecure_registries=args.insecure_registry))
        print(f"{args.reference}: digest: {digest}")
        return digest

    def _v_save(self, args, root, words):
        if not args.output:
            raise IPythonUsageError("%container save: use -o FILE (a notebook has no stdout to redirect)")
        return NotImplemented

    def _v_load(self, args, root, words):
        if not args.input:
            raise IPythonUsageError("%container load: use -i FILE (a notebook has no stdin)")
        return NotImplemented
