"""images, import, rmi, tag, history, image prune, fsck, save, load, pull, push, login, logout.

Exit codes are the docker CLI's for these verbs (tests/cli/test_images_cli.py has the table,
checked against docker): 1 for any error once the arguments parse (no such image, a bad
reference or filter, a damaged archive, a registry that does not answer), 125 for bad flags; a
full disk is jupybox's own error, 125, as for every verb.
"""

from __future__ import annotations

import fnmatch
import getpass
import json
import os
import sys

from .. import errors
from .format import ago, table
from .status import docker_status


def add_parsers(sub) -> None:
    p = sub.add_parser("images", help="List images")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--digests", action="store_true")
    p.add_argument("--format", help="'json' or 'table'")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]", help="only these (wildcards allowed)")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("import", help="Import a root filesystem tarball (plain, gzip or zstd) as an image")
    p.add_argument("-c", "--change", action="append", default=[], help="a Dockerfile instruction (CMD, ENV, ...)")
    p.add_argument("-m", "--message", help="commit message for the history")
    p.add_argument("file", help="a tar file, or - for stdin")
    p.add_argument("reference", nargs="?", help="NAME[:TAG]")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("rmi", help="Remove images")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_rmi)

    p = sub.add_parser("tag", help="Create a tag TARGET that refers to SOURCE")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("history", help="Show the history of an image")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format")
    p.add_argument("image")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("image", help="Manage images (ls, rm, prune, inspect)")
    isub = p.add_subparsers(dest="image_verb", metavar="VERB", parser_class=type(p))
    q = isub.add_parser("ls", help="List images")
    q.add_argument("-q", "--quiet", action="store_true")
    q.add_argument("--no-trunc", action="store_true")
    q.add_argument("--digests", action="store_true")
    q.add_argument("--format")
    q.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]", help="only these (wildcards allowed)")
    q.set_defaults(func=cmd_images)
    q = isub.add_parser("rm", help="Remove images")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("images", nargs="+")
    q.set_defaults(func=cmd_rmi)
    q = isub.add_parser("prune", help="Remove unused images (dangling ones; -a: every image without a "
                                      "container), then unreferenced blobs and layers and crash leftovers")
    q.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    q.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    q.add_argument("--filter", action="append", default=[], metavar="FILTER",
                   help="until=TIMESTAMP|DURATION, label=KEY[=VALUE], label!=KEY[=VALUE]")
    q.set_defaults(func=cmd_image_prune)
    q = isub.add_parser("inspect", help="Image details as JSON")
    q.add_argument("images", nargs="+")
    q.set_defaults(func=cmd_image_inspect)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1] if not getattr(args, "image_verb", None) else 0)

    p = sub.add_parser("fsck", help="Check the image store; --repair fixes what a crash left")
    p.add_argument("--repair", action="store_true")
    p.set_defaults(func=cmd_fsck)

    p = sub.add_parser("save", help="Save images to a tar archive (docker-archive, oci-archive, or both "
                                    "at once as docker 25+ writes: docker-oci-archive)")
    p.add_argument("-o", "--output", help="file (default: stdout)")
    p.add_argument("--format", default="docker-archive", choices=["docker-archive", "oci-archive", "docker-oci-archive"])
    from .env import add_save_options

    add_save_options(p)  # --materialize, --from-notebook (jupybox.env)
    p.add_argument("images", nargs="*")
    p.set_defaults(func=cmd_save)

    p = sub.add_parser("load", help="Load images from a docker-archive or oci-archive tar")
    p.add_argument("-i", "--input", help="file (default: stdin)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_load)

    for verb, helptext in (("pull", "Download an image from a registry"), ("push", "Upload an image to a registry")):
        p = sub.add_parser(verb, help=helptext)
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--authfile")
        p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]")
        if verb == "pull":
            p.add_argument("--platform")
        else:
            p.add_argument("--materialize", action="store_true",
                           help="an image built FROM host: make the host's environment a real layer first")
        p.add_argument("reference")
        p.set_defaults(func=cmd_pull if verb == "pull" else cmd_push)

    p = sub.add_parser("login", help="Log in to a registry")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--authfile")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]")
    p.add_argument("registry", nargs="?", default="docker.io")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help="Log out from a registry")
    p.add_argument("--authfile")
    p.add_argument("registry", nargs="?", default="docker.io")
    p.set_defaults(func=cmd_logout)


def image_rows(store) -> list[dict]:
    from ..runtime.container import age
    from ..units import human_size_si

    rows = []
    for img in store.list():
        refs = list(img.refs) or ["<none>:<none>"]
        for ref in refs:
            repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "<none>")
            if img.is_host:  # a view of the host, made at no time and of no size of its own
                created, size = "-", "host"
            else:
                created = f"{ago(age(img.created))} ago" if img.created else "N/A"
                size = human_size_si(img.size or 0)
            rows.append({"Repository": repo, "Tag": tag, "ID": img.id, "Digest": img.manifest_digest or "<none>",
                         "CreatedSince": created, "CreatedAt": "" if img.is_host else img.created or "",
                         "Size": size, "VirtualSize": img.size})
    return rows


def _matches(row: dict, pattern: str) -> bool:
    """docker's `images REPOSITORY[:TAG]`: shell wildcards on the familiar name (and the tag)."""
    name, _, tag = pattern.rpartition(":") if ":" in pattern.rsplit("/", 1)[-1] else (pattern, "", "")
    if not fnmatch.fnmatchcase(row["Repository"], name):
        return False
    return not tag or fnmatch.fnmatchcase(row["Tag"], tag)


@docker_status
def cmd_images(args, ctx) -> int:
    rows = image_rows(ctx.engine.store)
    if args.repository:
        rows = [r for r in rows if _matches(r, args.repository)]
    if args.quiet:
        seen = dict.fromkeys(r["ID"] if args.no_trunc else r["ID"].split(":")[-1][:12] for r in rows)
        for i in seen:
            ctx.print(i)
        return 0
    if args.format == "json":
        for r in rows:
            ctx.print(json.dumps(r))
        return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    body = [[r["Repository"], r["Tag"]] + ([r["Digest"]] if args.digests else [])
            + [r["ID"] if args.no_trunc else r["ID"].split(":")[-1][:12], r["CreatedSince"], r["Size"]] for r in rows]
    ctx.print(table(body, headers))
    return 0


@docker_status
def cmd_import(args, ctx) -> int:
    from ..image.importer import import_rootfs

    ref = args.reference or None
    if args.file == "-":
        image = import_rootfs(ctx.engine.store, sys.stdin.buffer, ref, changes=args.change, message=args.message)
    else:
        if not os.path.exists(args.file):
            raise errors.NotFound(f"open {args.file}: no such file or directory")
        image = import_rootfs(ctx.engine.store, args.file, ref, changes=args.change, message=args.message)
    ctx.print(image.id)
    return 0


@docker_status
def cmd_rmi(args, ctx) -> int:
    from ..image.nospace import NoSpace

    status = 0
    for ref in args.images:  # as docker: every image is tried, the errors said one by one
        try:
            for line in ctx.engine.store.remove(ref, force=args.force):
                ctx.print(line)
        except errors.JupyboxError as e:
            print(f"jupybox: {e}", file=ctx.err)
            status = max(status, e.exit_code if isinstance(e, NoSpace) else 1)
    return status


@docker_status
def cmd_tag(args, ctx) -> int:
    ctx.engine.store.tag(args.source, args.target)
    return 0


@docker_status
def cmd_history(args, ctx) -> int:
    from ..runtime.container import age
    from ..units import human_size_si

    img = ctx.engine.store.resolve(args.image, hint=False)
    hist = img.history()
    if args.format == "json":
        for h in hist:
            ctx.print(json.dumps(h))
        return 0
    body = []
    for h in hist:
        created_by = h.get("created_by", "")
        body.append(["<missing>" if h.get("empty_layer") else img.short_id if h is hist[0] else "<missing>",
                     f"{ago(age(h.get('created', '')))} ago" if h.get("created") else "N/A",
                     created_by if args.no_trunc else created_by[:45],
                     human_size_si(h.get("size") or 0), h.get("comment", "")])
    if args.quiet:
        for row in body:
            ctx.print(row[0])
        return 0
    ctx.print(table(body, ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]))
    return 0


@docker_status
def cmd_image_inspect(args, ctx) -> int:
    ctx.print(json.dumps([_with_build_fields(ctx.engine.store.resolve(r, hint=False)) for r in args.images],
                         indent=4))
    return 0


def _with_build_fields(img) -> dict:
    """docker's Config also shows OnBuild (null when unset), and Healthcheck and Shell when set."""
    info = img.inspect()
    cfg = img.config.get("config") or {}
    info["Config"]["OnBuild"] = cfg.get("OnBuild")
    for key in ("Healthcheck", "Shell"):
        if cfg.get(key):
            info["Config"][key] = cfg[key]
    return info


def human_size(n: float) -> str:
    """docker's units.HumanSize: four significant digits, powers of 1000 (``4.15MB``, ``0B``)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


PRUNE_WARNING = {False: "WARNING! This will remove all dangling images.",
                 True: "WARNING! This will remove all images without at least one container associated to them."}


@docker_status
def cmd_image_prune(args, ctx) -> int:
    from ..image.filters import PruneFilters

    filters = PruneFilters.parse(args.filter)  # a bad filter is refused before the question
    if not args.force:
        ctx.out.write(PRUNE_WARNING[args.all] + "\nAre you sure you want to continue? [y/N] ")
        ctx.out.flush()
        if sys.stdin.readline().strip().lower() != "y":
            ctx.print("Total reclaimed space: 0B")
            return 0
    result = ctx.engine.store.prune(all=args.all, filters=filters)
    if result["deleted"]:
        ctx.print("Deleted Images:\n" + "\n".join(result["deleted"]) + "\n")
    ctx.print(f"Total reclaimed space: {human_size(result['bytes'])}")
    return 0


@docker_status
def cmd_fsck(args, ctx) -> int:
    problems = ctx.engine.store.check(repair=args.repair)
    for p in problems:
        ctx.print(p)
    if not problems:
        ctx.print("the store is consistent")
    return 1 if problems and not args.repair else 0


def _progress(args):
    if getattr(args, "quiet", False):
        return None
    from ..registry import default_progress

    return default_progress(sys.stderr)


@docker_status
def cmd_save(args, ctx) -> int:
    from ..image.archive import save
    from .env import images_to_save

    args.images = images_to_save(args, ctx)  # --from-notebook, --materialize
    if args.output:
        save(ctx.engine.store, args.images, args.output, format=args.format)
        return 0
    if os.isatty(1):
        raise errors.UsageError("cowardly refusing to write an archive to a terminal: use -o FILE or redirect")
    save(ctx.engine.store, args.images, sys.stdout.buffer, format=args.format)
    return 0


@docker_status
def cmd_load(args, ctx) -> int:
    from ..image.archive import load

    src = args.input if args.input else sys.stdin.buffer
    if args.input and not os.path.exists(args.input):
        raise errors.NotFound(f"open {args.input}: no such file or directory")
    for img in load(ctx.engine.store, src):
        refs = list(getattr(img, "loaded_refs", img.refs))
        if refs:
            for r in refs:
                ctx.print(f"Loaded image: {r}")
        else:
            ctx.print(f"Loaded image ID: {img.id}")
    return 0


@docker_status
def cmd_pull(args, ctx) -> int:
    from ..registry import pull

    img = pull(ctx.engine.store, args.reference, platform=args.platform, progress=_progress(args),
               authfile=args.authfile, insecure_registries=args.insecure_registry)
    ctx.print(f"Digest: {img.manifest_digest}")
    ctx.print(f"Status: Downloaded image for {args.reference}")
    return 0


@docker_status
def cmd_push(args, ctx) -> int:
    from ..registry import push

    if args.materialize:
        from ..env.hostbased import materialize

        materialize(ctx.engine.store, args.reference, out=ctx.err)
    digest = push(ctx.engine.store, args.reference, progress=_progress(args), authfile=args.authfile,
                  insecure_registries=args.insecure_registry)
    ctx.print(f"{args.reference}: digest: {digest}")
    return 0


@docker_status
def cmd_login(args, ctx) -> int:
    from ..registry import login

    username = args.username
    if args.password_stdin:
        if args.password:
            raise errors.UsageError("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=ctx.err)
        password = args.password
    else:
        if not username:
            username = input("Username: ")
        password = getpass.getpass("Password: ")
    if not username:
        raise errors.UsageError("login: a username is required (-u)")
    login(args.registry, username, password, authfile=args.authfile, insecure_registries=args.insecure_registry)
    ctx.print("Login Succeeded")
    return 0


@docker_status
def cmd_logout(args, ctx) -> int:
    from ..registry import logout

    if logout(args.registry, authfile=args.authfile):
        ctx.print(f"Removing login credentials for {args.registry}")
    else:
        ctx.print(f"Not logged in to {args.registry}")
    return 0
