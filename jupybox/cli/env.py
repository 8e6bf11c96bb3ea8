"""commit, notebook images|lock, lock; ``save --from-notebook`` and ``--materialize`` (see :mod:`jupybox.env`).

    jupybox commit -m "with the data" -c 'CMD ["python3"]' web analysis:1
    jupybox commit host my-env:2026-12          # the host's environment as a portable image
    jupybox notebook images analysis.ipynb      # what the notebook needs, and whether it is here
    jupybox notebook lock analysis.ipynb        # its images rewritten to NAME:TAG@DIGEST
    jupybox save --from-notebook analysis.ipynb -o env.tar
    %container lock                             # in a notebook: the notebook being run
"""

from __future__ import annotations

import os

from .. import errors


def add_parsers(sub) -> None:
    p = sub.add_parser("commit", help="Create a new image from a container's changes (or `host`: the host)")
    p.add_argument("-m", "--message", help="commit message")
    p.add_argument("-a", "--author", help='author (e.g. "Jane <jane@example.org>")')
    p.add_argument("-c", "--change", action="append", default=[], help="a Dockerfile instruction (CMD, ENV, ...)")
    p.add_argument("-p", "--pause", action="store_true", default=True, help="pause the container while its "
                                                                              "changes are copied (default)")
    p.add_argument("--no-pause", dest="pause", action="store_false", help="do not pause it")
    p.add_argument("container", metavar="CONTAINER|host")
    p.add_argument("reference", nargs="?", metavar="IMAGE[:TAG]")
    p.set_defaults(func=cmd_commit)

    p = sub.add_parser("notebook", help="The images a notebook needs: images, lock")
    nsub = p.add_subparsers(dest="notebook_verb", metavar="VERB", parser_class=type(p))
    q = nsub.add_parser("images", help="List the images a notebook's cells and kernel need")
    q.add_argument("-q", "--quiet", action="store_true", help="only the pinned references")
    q.add_argument("notebook")
    q.set_defaults(func=cmd_notebook_images)
    q = nsub.add_parser("lock", help="Rewrite a notebook's image tags to digests (NAME:TAG@DIGEST)")
    q.add_argument("notebook")
    q.set_defaults(func=cmd_notebook_lock)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1])

    p = sub.add_parser("lock", help="Lock a notebook's images (in a notebook: the one being run)")
    p.add_argument("notebook", nargs="?", help="default: the notebook of this kernel's session")
    p.set_defaults(func=cmd_lock)


def add_save_options(p) -> None:
    p.add_argument("--materialize", action="store_true",
                   help="an image built FROM host: make the host's environment a real layer first")
    p.add_argument("--from-notebook", metavar="NOTEBOOK",
                   help="save every image the notebook needs (an oci-archive: pinned digests hold after a load)")


def images_to_save(args, ctx) -> list[str]:
    """``save``'s images: the notebook's (``--from-notebook``), materialized first (``--materialize``)."""
    refs = list(args.images)
    store = ctx.engine.store
    if getattr(args, "from_notebook", None):
        from ..env import notebook

        found = notebook.images(args.from_notebook, store)
        missing = [f"{n.where}: {n.image}" for n, i in found if i is None]
        if missing:
            raise errors.ImageNotFound(f"{args.from_notebook}: not in the store: {'; '.join(missing)}")
        from ..image.host import is_host_reference

        # pinned ones by id: an OCI archive keeps their manifests, so their digests hold after a load
        refs += [i if n.digest else n.image for n, i in found if not is_host_reference(n.image)]
        args.format = "oci-archive" if args.format == "docker-archive" else args.format
    if not refs:
        raise errors.UsageError("save: no image given")
    if getattr(args, "materialize", False):
        from ..env.hostbased import materialize

        out = []
        for r in dict.fromkeys(refs):
            new = materialize(store, r, out=ctx.err)
            out.append(r if store.resolve(r).id == new.id else new.id)
        refs = out
    return refs


def cmd_commit(args, ctx) -> int:
    from ..env.commit import commit

    img = commit(ctx.engine, args.container, args.reference, message=args.message, author=args.author,
                 changes=args.change, pause=args.pause, out=ctx.err)
    ctx.print(img.id)
    return 0


def cmd_notebook_images(args, ctx) -> int:
    from ..env import notebook
    from .format import table

    found = notebook.images(args.notebook, ctx.engine.store)
    if args.quiet:
        for need, _ in found:
            ctx.print(need.image)
        return 0
    rows = [[n.where, n.image, n.digest or "-", i[7:19] if i else "missing"] for n, i in found]
    ctx.print(table(rows, ["WHERE", "IMAGE", "DIGEST", "IMAGE ID"]))
    return 1 if any(i is None for _, i in found) else 0


def cmd_notebook_lock(args, ctx) -> int:
    from ..env import notebook

    for line in notebook.lock(args.notebook, ctx.engine.store):
        ctx.print(line)
    return 0


def cmd_lock(args, ctx) -> int:
    path = args.notebook or os.environ.get("JPY_SESSION_NAME")
    if not path or not path.endswith(".ipynb") or not os.path.exists(path):
        raise errors.UsageError("lock: name the notebook (this kernel's session names none): %container lock "
                                "NOTEBOOK.ipynb")
    args.notebook = path
    code = cmd_notebook_lock(args, ctx)
    ctx.print(f"{path}: locked (reload it in the front end to see the pinned cells)")
    return code
