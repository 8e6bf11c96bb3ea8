"""Differential tests: the same Dockerfile built by jupybox and by buildah (Debian's package,
``buildah bud --isolation chroot --pull=never``) on the same base images must give the same config
fields and the same file tree (paths, types, modes, owners, link targets, contents).

Both start from the very same base: the busybox-static (and mmdebstrap Debian) images of a
jupybox store, pulled into a private buildah store (``--root``/``--runroot`` under a temporary
directory, removed at the end). buildah's image is pushed to an OCI layout to read its layers.

Known differences, normalized here and nowhere else:
* buildah leaves its own mount points in RUN layers (empty ``/etc/resolv.conf``, ``/etc/hosts``,
  ``/etc/hostname``) — jupybox drops the runtime's files (see jupybox.dockerfile.layers);
* buildah writes ``"Entrypoint": []`` where docker and jupybox write null, and adds the label
  ``io.buildah.version``;
* buildah keeps an EXPOSE range as one key (``9000-9001/tcp``) where docker (and jupybox) expand it
  into one key per port;
* mtimes are not compared (buildah sets the build time on copied files, docker keeps them);
* WORKDIR: docker and jupybox create a missing directory in a layer at once, buildah when a later
  step needs it (the trees agree when a later step uses the directory, as in every case here);
* a RUN that changes nothing is an ``empty_layer`` entry for docker and jupybox; buildah adds a
  layer holding only its mount points.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from jbx_build_helpers import diff_trees, oci_tree, store_tree, write_tree

pytestmark = [pytest.mark.root, pytest.mark.slow]

CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
                 "StopSignal", "Healthcheck", "OnBuild", "Shell")
RUNTIME_FILES = ("etc/resolv.conf", "etc/hosts", "etc/hostname")


class Buildah:
    def __init__(self, base: Path):
        self.base = base
        # overlay, not vfs: vfs computes layers by comparing metadata, and misses a file rewritten
        # with the same size and mtime (useradd's /etc/group- backup, for one)
        self.args = ["buildah", "--root", str(base / "root"), "--runroot", str(base / "run"),
                     "--storage-driver", "overlay"]

    def __call__(self, *args, check=True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(self.args + [str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"buildah {args[0]} failed: {r.stderr[-2000:]}")
        return r

    def load(self, layout: Path, tag: str, name: str) -> None:
        img = self("pull", "-q", f"oci:{layout}:{tag}").stdout.split()[-1]
        self("tag", img, name)

    def build(self, ctx: Path, name: str, *extra) -> tuple[dict, dict]:
        self("bud", "--isolation", "chroot", "--pull=never", "--layers", "--format", "docker", "-t", name,
             *extra, ctx)
        out = self.base / "oci" / name
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(exist_ok=True)
        self("push", "-q", name, f"oci:{out}:{name}")
        tree, _ = oci_tree(out, name)
        config = json.loads(self("inspect", "--type", "image", name).stdout)["Docker"]
        return tree, config

    def cleanup(self) -> None:
        self("rm", "-a", check=False)
        self("rmi", "-a", "-f", check=False)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if str(self.base) in line.split()[4]]
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, busybox_tar):
    """(jupybox root, Buildah) with busybox:latest in both."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed")
    from jupybox.testing import import_image

    root = tmp_path_factory.mktemp("jbx-diff")
    import_image(root, busybox_tar, "busybox:latest")
    bh = Buildah(tmp_path_factory.mktemp("buildah"))
    try:
        bh.load(root / "images", "latest", "docker.io/library/busybox:latest")
        yield root, bh
    finally:
        bh.cleanup()
        from jupybox.testing.leaks import cleanup_mounts_under, kill_processes_under

        kill_processes_under(root)
        cleanup_mounts_under(root)


def both(stores, tmp_path, dockerfile: str, files: dict | None = None, name: str = "t", base_tree=None,
         build_args=None):
    root, bh = stores
    from jupybox.dockerfile import build
    from jupybox.image.store import ImageStore

    ctx = write_tree(tmp_path / "ctx", files or {})
    (ctx / "Dockerfile").write_text(dockerfile)
    img = build(ctx, root=root, tags=[f"{name}:jbx"], runner="in-process", build_args=build_args or {})
    store = ImageStore(root)
    ours = store_tree(store, img)
    extra = [a for k, v in (build_args or {}).items() for a in ("--build-arg", f"{k}={v}")]
    theirs, tconfig = bh.build(ctx, f"{name}-bh", *extra)
    base = base_tree if base_tree is not None else store_tree(store, store.resolve("busybox"))
    for f in RUNTIME_FILES:
        n = theirs.get(f)
        if n is not None and n.kind == "file" and n.size == 0 and f not in base and f not in ours:
            del theirs[f]
    return img, ours, tconfig, theirs


def norm_config(c: dict) -> dict:
    out = {}
    for k in CONFIG_FIELDS:
        v = c.get(k)
        if k == "Labels" and v:
            v = {a: b for a, b in v.items() if a != "io.buildah.version"}
        if k == "ExposedPorts" and v:
            ports = {}
            for p in v:
                num, _, proto = p.partition("/")
                lo, _, hi = num.partition("-")
                for n in range(int(lo), int(hi or lo) + 1):
                    ports[f"{n}/{proto or 'tcp'}"] = {}
            v = ports
        if v in ([], {}, "", None):
            v = None
        out[k] = v
    return out


def check(img, ours, tconfig, theirs) -> None:
    assert norm_config(img.config["config"]) == norm_config(tconfig["config"])
    assert diff_trees(ours, theirs) == []
    ours_hist, theirs_hist = img.config["history"], tconfig["history"]
    assert len(ours_hist) == len(theirs_hist)
    for a, b in zip(ours_hist, theirs_hist):
        if "WORKDIR" in a.get("created_by", ""):
            continue  # docker and jupybox make WORKDIR's directory in a layer; buildah waits for a RUN
        if a.get("empty_layer") and "#(nop)" not in a.get("created_by", "#(nop)"):
            continue  # a RUN that changed nothing: docker and jupybox add no layer, buildah one with its
            # mount points
        assert bool(a.get("empty_layer")) == bool(b.get("empty_layer")), (a, b)


def test_metadata_and_run(stores, tmp_path):
    df = ("FROM busybox\n"
          "ARG VERSION=1.2\n"
          "ENV APP_HOME=/srv/app VERSION_ENV=$VERSION PATH=/srv/app/bin:$PATH\n"
          "LABEL org.example.version=$VERSION description=\"a test image\"\n"
          "WORKDIR $APP_HOME\n"
          "RUN mkdir -p bin data && echo \"#!/bin/sh\" > bin/run && chmod 755 bin/run \\\n"
          " && echo $VERSION > version && ln -s version current && ln version hard \\\n"
          " && mkfifo pipe && chmod 4750 bin/run && chown 1000:1000 data\n"
          "RUN rm -rf /home/user /usr/bin/env && mkdir -p /var/cache/x && touch /var/cache/x/f\n"
          "RUN rm -rf /var/cache/x && mkdir /var/cache/x && echo new > /var/cache/x/g\n"
          "USER 1000:1000\n"
          "EXPOSE 8080 53/udp 9000-9001\n"
          "VOLUME [\"/srv/app/data\"]\n"
          "STOPSIGNAL SIGQUIT\n"
          "HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD [\"/srv/app/bin/run\"]\n"
          "ENTRYPOINT [\"/srv/app/bin/run\"]\n"
          "CMD [\"--serve\"]\n"
          "ONBUILD RUN echo child\n")
    check(*both(stores, tmp_path, df, build_args={"VERSION": "2.0"}))


def test_copy_variants(stores, tmp_path):
    files = {"f.txt": ("hello\n", 0o640), "exec.sh": ("#!/bin/sh\n", 0o755), "dir/a": "a", "dir/sub/b": "b",
             "dir/sub": {"dir": 0o700}, "dir/lnk": {"link": "a"}, "link": {"link": "f.txt"},
             "dirlink": {"link": "dir"}, "c1.conf": "1", "c2.conf": "2", "sp ace": "s",
             ".dockerignore": "*.log\n**/*.tmp\nbuild\n!build/keep.txt\n", "x.log": "l", "dir/y.tmp": "t",
             "build/out.o": "o", "build/keep.txt": "k"}
    df = ("FROM busybox\n"
          "COPY f.txt /renamed\n"
          "COPY f.txt exec.sh /into/\n"
          "COPY dir /dircontents\n"
          "COPY dir /tmp\n"
          "COPY dir /home/user/\n"
          "COPY link /followed\n"
          "COPY dirlink /viadirlink\n"
          "COPY c*.conf /globbed/\n"
          "COPY [\"sp ace\", \"/with space\"]\n"
          "WORKDIR /work\n"
          "COPY f.txt ./\n"
          "COPY f.txt relative/dir/\n"
          "COPY --chown=1000:1000 dir /owned\n"
          "COPY --chown=user:user f.txt /owned-by-name/\n"
          "COPY --chown=65534 exec.sh /owned-uid-only\n"
          # an existing directory: a created one gets the --chmod mode from BuildKit, 0755 from buildah
          "RUN mkdir /chmodded\n"
          "COPY --chmod=600 f.txt exec.sh /chmodded/\n"
          "COPY f.txt /usr/bin/in-existing-dir\n"
          "COPY . /whole-context/\n")
    check(*both(stores, tmp_path, df, files))


def test_multistage_and_add(stores, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, mode in (("pkg/bin/tool", b"#!/bin/sh\n", 0o755), ("pkg/share/doc", b"doc", 0o644)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            tar.addfile(ti, io.BytesIO(data))
    df = ("ARG BASE=busybox\n"
          "FROM $BASE AS build\n"
          "RUN mkdir -p /out/sub && echo built > /out/artifact && echo s > /out/sub/s \\\n"
          " && chown -R 1000:1000 /out/sub && chmod 700 /out/sub\n"
          "FROM build AS unused\n"
          "RUN exit 1\n"
          "FROM busybox\n"
          "COPY --from=build /out/artifact /app/\n"
          "COPY --from=build /out /app/all/\n"
          "COPY --from=build --chown=0:0 /out/sub /app/rootowned/\n"
          "ADD pkg.tgz /opt/\n"
          "ADD pkg.tgz /opt2\n"
          "RUN /opt/pkg/bin/tool && cat /app/artifact\n")
    check(*both(stores, tmp_path, df, {"pkg.tgz": buf.getvalue()}))


@pytest.fixture(scope="module")
def debian(stores, debian_tar):
    root, bh = stores
    from jupybox.testing import import_image

    import_image(root, debian_tar, "debian:bookworm")
    bh.load(root / "images", "bookworm", "docker.io/library/debian:bookworm")
    return "debian:bookworm"


def test_debian_base(stores, debian, tmp_path):
    from jupybox.image.store import ImageStore

    store = ImageStore(stores[0])
    base = store_tree(store, store.resolve(debian))
    df = ("FROM debian:bookworm\n"
          "RUN useradd -m -u 1234 app && rm -rf /usr/share/doc/* /var/log/apt \\\n"
          " && python3 -c 'import json; print(json.dumps({\"ok\": True}))' > /srv/ok.json\n"
          "COPY --chown=app:app main.py /home/app/\n"
          "USER app\n"
          "WORKDIR /home/app\n"
          "RUN python3 main.py > out.txt\n"
          "CMD [\"python3\", \"main.py\"]\n")
    check(*both(stores, tmp_path, df, {"main.py": "print('hello from python')\n"}, name="deb", base_tree=base))
