#!/usr/bin/env python3
"""Rootless launches (issue 8) against root ones and the unprivileged floor, interleaved.

    python benchmarks/bench_rootless.py [--runs 30] [--warmup 3] [--out FILE]

Run as root: it makes two users for the run (jupybox.testing.rootless: one with /etc/subuid
ranges, one without), each with its own store (~/.local/share/jupybox) holding busybox.

    api-root / api-full / api-single   jupybox.run(busybox, ["/bin/true"], memory="64m",
                                       remove=True).wait() in a worker (as root / as each user)
    cli-root / cli-full / cli-single   `jupybox run --rm --network none busybox true`
    floor-unshare                      `unshare --user --map-root-user --mount --pid --fork --uts
                                       --ipc --net chroot ROOTFS /bin/true` as the user: the least a
                                       rootless container costs (no overlay, no security settings)

Rootless podman is no anchor here: on this hybrid-cgroup machine it fails ("crun: cgroups in
hybrid mode not supported"), runc refuses --cgroups=disabled.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import Case, Worker, format_table, run_interleaved, write_results  # noqa: E402

from jupybox.testing import busybox_tarball, cache_dir, import_image  # noqa: E402
from jupybox.testing.leaks import kill_processes_under  # noqa: E402
from jupybox.testing.rootless import unavailable, unprivileged_user  # noqa: E402

IMAGE = "busybox:latest"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = ap.parse_args(argv)
    why = unavailable()
    if why:
        print(f"the rootless benchmark {why}", file=sys.stderr)
        return 2
    import compileall

    compileall.compile_dir(str(HERE.parent / "jupybox"), quiet=1)
    py = sys.executable
    cli = str(Path(py).parent / "jupybox")
    tarball = busybox_tarball(cache_dir())
    work = Path(tempfile.mkdtemp(prefix="jbx-bench-rl-"))
    root = work / "root"
    import_image(root, tarball, IMAGE)
    workers: list[Worker] = []
    cases: list[Case] = []
    exec_root = Worker([py, str(HERE / "worker.py")], env=dict(os.environ, JUPYBOX_ROOT=str(root)))
    workers.append(exec_root)
    with unprivileged_user(subids=True, prefix="jbxbf") as full, unprivileged_user(subids=False, prefix="jbxbs") as single:
        try:
            for u in (full, single):
                tar = u.give(tarball, "busybox.tar.gz")
                out = u.run([cli, "import", str(tar), IMAGE])
                if out.returncode:
                    raise RuntimeError(out.stderr)
            rootfs = single.home / "rootfs"
            rootfs.mkdir()
            with tarfile.open(tarball) as t:
                t.extractall(rootfs, filter="fully_trusted")
            subprocess.run(["chown", "-R", f"{single.uid}:{single.gid}", str(rootfs)], check=True)

            api_root = Worker([py, str(HERE / "worker.py"), "--api"], env=dict(os.environ, JUPYBOX_ROOT=str(root)))
            workers.append(api_root)
            cases.append(Case("api-root", lambda: api_root.call(op="api", image=IMAGE, root=str(root),
                          command=["/bin/true"], options={"memory": "64m", "remove": True, "network": "none"})["t"],
                          note="as root"))
            by_user = {}
            for kind, u in (("full", full), ("single", single)):
                uroot = str(u.home / ".local/share/jupybox")
                api = Worker(u.argv([py, str(HERE / "worker.py"), "--api"]), env=u.env())
                ex = Worker(u.argv([py, str(HERE / "worker.py")]), env=u.env())
                workers += [api, ex]
                by_user[kind] = (u, api, ex, uroot)
                cases.append(Case(f"api-{kind}", lambda api=api, uroot=uroot: api.call(
                    op="api", image=IMAGE, root=uroot, command=["/bin/true"],
                    options={"memory": "64m", "remove": True, "network": "none"})["t"],
                    note=f"rootless, {'sub-id ranges' if kind == 'full' else 'single id'}"))
            argv = [cli, "run", "--rm", "--network", "none", IMAGE, "true"]
            cases.append(Case("cli-root", lambda: exec_root.call(op="exec", argv=argv,
                              env=dict(os.environ, JUPYBOX_ROOT=str(root)))["t"], note="as root"))
            for kind, (u, _api, ex, _r) in by_user.items():
                cases.append(Case(f"cli-{kind}", lambda ex=ex, u=u: ex.call(op="exec", argv=argv, env=u.env())["t"],
                                  note="rootless"))
            floor = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--uts", "--ipc", "--net",
                     "chroot", str(rootfs), "/bin/true"]
            s_ex = by_user["single"][2]
            cases.append(Case("floor-unshare", lambda: s_ex.call(op="exec", argv=floor, env=single.env())["t"],
                              note="unshare -Urmpf... chroot, as the user"))
            results = run_interleaved(cases, args.runs, warmup=args.warmup)
        finally:
            for w in workers:
                w.close()
            kill_processes_under(root)
            shutil.rmtree(work, ignore_errors=True)

    print("rootless: launches as a user against root ones (interleaved)")
    print(format_table(results, "api-root"))
    entry = {"rootless": {
        "description": "rootless launches vs root ones, interleaved",
        "runs": args.runs,
        "reference": "api-root",
        "cases": {name: r.to_dict(results.get("api-root")) for name, r in results.items()},
    }}
    write_results(args.out, entry, {"rootless_benchmark": True})
    print(json.dumps({n: round(r.median * 1000, 2) for n, r in results.items() if r.times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
