"""Building real images: every instruction, the expansion rules in context, multi-stage builds,
ONBUILD, ADD, heredocs, .dockerignore (root: RUN steps are real containers)."""

from __future__ import annotations

import io
import tarfile

import pytest

from jupybox.errors import BuildError

pytestmark = pytest.mark.root


def cfg(img) -> dict:
    return img.config["config"]


def test_metadata_instructions(bb):
    img = bb.build(
        "FROM busybox\n"
        "ENV A=1 B=\"two words\" C=a\\ b\n"
        "ENV A=override D=$A E=${B}\n"  # expanded with the env before this instruction
        "ENV legacy form keeps spaces\n"
        "LABEL version=\"1.0\" \"with space\"=yes multi=$A\n"
        "EXPOSE 80 8080/udp 7000-7002/tcp\n"
        "VOLUME /data /more\n"
        "VOLUME [\"/j1\", \"/j2\"]\n"
        "USER 1000:1000\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD wget -q localhost || exit 1\n"
        "SHELL [\"/bin/sh\", \"-ec\"]\n"
        "CMD echo hello\n"
        "ENTRYPOINT [\"/bin/env\"]\n"
        "ONBUILD RUN echo child\n"
        "MAINTAINER someone@example.com\n", tags=["meta:1"])
    c = cfg(img)
    assert c["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=override",
                        "B=two words", "C=a b", "D=1", "E=two words", "legacy=form keeps spaces"]
    assert c["Labels"] == {"version": "1.0", "with space": "yes", "multi": "override"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "8080/udp": {}, "7000/tcp": {}, "7001/tcp": {}, "7002/tcp": {}}
    assert c["Volumes"] == {"/data": {}, "/more": {}, "/j1": {}, "/j2": {}}
    assert c["User"] == "1000:1000"
    assert c["StopSignal"] == "SIGUSR1"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 30_000_000_000,
                                "Timeout": 3_000_000_000, "Retries": 2}
    assert c["Shell"] == ["/bin/sh", "-ec"]
    # CMD set in this stage survives ENTRYPOINT; shell form uses the SHELL in effect
    assert c["Cmd"] == ["/bin/sh", "-ec", "echo hello"]
    assert c["Entrypoint"] == ["/bin/env"]
    assert c["OnBuild"] == ["RUN echo child"]
    assert img.config["author"] == "someone@example.com"
    hist = img.config["history"][1:]
    assert len(hist) == 15 and all(h.get("empty_layer") for h in hist)
    assert hist[0]["created_by"] == '/bin/sh -c #(nop) ENV A=1 B="two words" C=a\\ b'
    assert img.refs == ["meta:1"]
    assert len(img.diff_ids) == 1  # only the base layer


def test_entrypoint_resets_inherited_cmd(bb):
    bb.build("FROM busybox\nCMD [\"base-cmd\"]\n", tags=["withcmd"])
    img = bb.build("FROM withcmd\nENTRYPOINT [\"/bin/echo\"]\n")
    assert cfg(img)["Cmd"] is None and cfg(img)["Entrypoint"] == ["/bin/echo"]
    img = bb.build("FROM withcmd\nENTRYPOINT echo hi\n")
    assert cfg(img)["Entrypoint"] == ["/bin/sh", "-c", "echo hi"]


def test_run_uses_env_workdir_user_and_shell(bb):
    img = bb.build(
        "FROM busybox\n"
        "ENV GREETING=hello\n"
        "ARG WHO=world\n"
        "WORKDIR /srv/app\n"
        "RUN echo \"$GREETING $WHO from $(pwd) as $(id -u)\" > /srv/app/out.txt\n"
        "USER 1000\n"
        "RUN id -u > /tmp/uid\n"
        "USER root\n"
        "SHELL [\"/bin/sh\", \"-c\", \"echo shell-was-used >> /tmp/shell; eval \\\"$1\\\"\", \"sh\"]\n"
        "RUN echo ran > /tmp/ran\n"
        "RUN [\"/bin/sh\", \"-c\", \"echo json-form > /tmp/json\"]\n", build_args={"WHO": "jupybox"})
    code, out = bb.run(img.id, "cat /srv/app/out.txt /tmp/uid /tmp/shell /tmp/ran /tmp/json; "
                               "ls -ld /srv/app | cut -c1-10; echo $WHO")
    assert code == 0
    assert out.split("\n")[:6] == ["hello jupybox from /srv/app as 0", "1000", "shell-was-used", "ran", "json-form",
                                   "drwxr-xr-x"]
    assert out.split("\n")[6] == ""  # ARG values are not kept in the image's environment
    runs = [h for h in img.config["history"][1:] if "#(nop)" not in h["created_by"]]
    assert runs[0]["created_by"].startswith("|1 WHO=jupybox /bin/sh -c echo")
    assert not runs[0].get("empty_layer")


def test_run_layer_has_whiteouts_and_no_runtime_files(bb):
    img = bb.build("FROM busybox\nRUN rm -rf /home/user /bin/ls && mkdir /new && echo x > /new/f "
                   "&& echo y > /etc/added\n")
    layer = bb.store.blob_path(img.layers[-1]["digest"])
    with tarfile.open(layer) as t:
        names = sorted(t.getnames())
    assert names == ["bin", "bin/.wh.ls", "etc", "etc/added", "home", "home/.wh.user", "new", "new/f"]
    tree = bb.tree(img)
    assert "home/user" not in tree and "bin/ls" not in tree and tree["new/f"].kind == "file"
    # /etc kept the image's metadata, not the runtime's mount-point directory's
    base = bb.tree(bb.store.resolve("busybox"))
    assert tree["etc"] == base["etc"]
    # the unpacked layer directory is the former upper dir: whiteouts as 0/0 char devices
    from jbx_build_helpers import is_whiteout

    d = bb.store.layer_path(img.diff_ids[-1])
    assert is_whiteout(str(d / "home" / "user")) and not (d / "etc" / "hosts").exists()


def test_run_opaque_directory(bb):
    img = bb.build("FROM busybox\nRUN mkdir -p /opq && touch /opq/old\n"
                   "RUN rm -rf /opq && mkdir /opq && touch /opq/new\n")
    with tarfile.open(bb.store.blob_path(img.layers[-1]["digest"])) as t:
        names = sorted(t.getnames())
    assert "opq/.wh..wh..opq" in names and "opq/new" in names
    code, out = bb.run(img.id, "ls /opq")
    assert out.split() == ["new"]


def test_run_that_changes_nothing_adds_no_layer(bb):
    img = bb.build("FROM busybox\nRUN true\n")
    assert len(img.diff_ids) == 1 and img.config["history"][-1]["empty_layer"] is True


def test_a_layer_twice_in_one_image_runs(bb):
    # chown to the owner a file already has copies it up unchanged: the step's layer is the same
    # tar as the step's before, so the image lists one diff_id twice (overlayfs refuses that)
    img = bb.build("FROM busybox\nRUN mkdir -p /data && echo one > /data/a\nRUN chown 0:0 /data/a\n")
    assert len(img.diff_ids) == 3 and img.diff_ids[1] == img.diff_ids[2]
    code, out = bb.run(img.id, "cat /data/a")
    assert code == 0 and out.strip() == "one"


def test_workdir_creates_directory_once(bb):
    img = bb.build("FROM busybox\nWORKDIR /a\nWORKDIR b\nWORKDIR ../c/./d\nWORKDIR /tmp\n")
    assert cfg(img)["WorkingDir"] == "/tmp"
    tree = bb.tree(img)
    assert tree["a/b"].kind == "dir" and tree["a/c/d"].kind == "dir" and tree["a"].mode == 0o755
    hist = img.config["history"][1:]
    assert [h.get("empty_layer", False) for h in hist] == [False, False, False, True]


def test_copy_semantics(bb):
    bb.files({"f.txt": ("hello", 0o640), "dir/a": "a", "dir/sub/b": "b", "dir/sub": {"dir": 0o700},
              "link": {"link": "f.txt"}, "dirlink": {"link": "dir"}, "x1.conf": "1", "x2.conf": "2",
              "dir/inner": {"link": "a"}, "sp ace.txt": "s"})
    img = bb.build(
        "FROM busybox\n"
        "COPY f.txt /file-renamed\n"
        "COPY f.txt /into/\n"
        "COPY dir /copied\n"          # a directory's contents
        "COPY dir /tmp\n"             # into an existing directory: it keeps its metadata
        "COPY link /followed\n"       # a top-level symlink is followed
        "COPY dirlink /viadirlink\n"
        "COPY x*.conf /globbed/\n"
        "COPY [\"sp ace.txt\", \"/json dest\"]\n"
        "WORKDIR /w\n"
        "COPY f.txt .\n"
        "COPY f.txt rel/\n"
        "COPY --chown=1000:1000 dir /owned\n"
        "COPY --chown=user f.txt /owned-by-name\n"
        "COPY --chmod=0600 dir f.txt /chm/\n"
        "COPY f.txt /bin/f-in-bin\n")
    t = bb.tree(img)
    assert t["file-renamed"].kind == "file" and t["file-renamed"].mode == 0o640 and t["file-renamed"].uid == 0
    assert t["into/f.txt"].mode == 0o640 and t["into"].mode == 0o755
    assert t["copied"].mode == 0o755 and t["copied/sub"].mode == 0o700 and t["copied/sub/b"].kind == "file"
    assert t["copied/inner"] == t["copied/inner"].__class__("link", 0o777, 0, 0, target="a")
    assert "copied/dir" not in t
    assert t["tmp"].mode == 0o1777 and t["tmp/a"].kind == "file"
    assert t["followed"].kind == "file" and t["followed"].digest == t["file-renamed"].digest
    assert t["viadirlink/a"].kind == "file"
    assert sorted(k for k in t if k.startswith("globbed/")) == ["globbed/x1.conf", "globbed/x2.conf"]
    assert t["json dest"].kind == "file"
    assert t["w/f.txt"].kind == "file" and t["w/rel/f.txt"].kind == "file"
    assert (t["owned"].uid, t["owned/a"].uid, t["owned/sub/b"].gid) == (1000, 1000, 1000)
    assert (t["owned-by-name"].uid, t["owned-by-name"].gid) == (1000, 1000)
    assert t["chm/a"].mode == 0o600 and t["chm/sub"].mode == 0o600 and t["chm/f.txt"].mode == 0o600
    assert t["chm"].mode == 0o600  # BuildKit creates the destination with an octal --chmod's mode too
    assert t["bin/f-in-bin"].kind == "file"


def test_copy_follows_symlinks_in_destination(bb):
    bb.files({"f": "data"})
    img = bb.build("FROM busybox\nRUN mkdir -p /real && ln -s /real /linked\nCOPY f /linked/f\n")
    t = bb.tree(img)
    assert t["real/f"].kind == "file" and t["linked"].kind == "link"


def test_copy_from_stage_image_and_index(bb):
    img = bb.build(
        "FROM busybox AS one\n"
        "RUN mkdir /out && echo 1 > /out/one && chown 1000:1000 /out/one\n"
        "FROM busybox\n"
        "RUN echo 2 > /two\n"
        "FROM busybox\n"
        "COPY --from=one /out/one /from-name\n"
        "COPY --from=1 /two /from-index\n"
        "COPY --from=busybox:latest /bin/busybox /from-image\n"
        "COPY --from=one --chown=0:0 /out /out-chowned/\n")
    t = bb.tree(img)
    assert t["from-name"].kind == "file" and t["from-name"].uid == 1000  # --from keeps the owner
    assert t["from-index"].kind == "file" and t["from-image"].size > 100_000
    assert t["out-chowned/one"].uid == 0
    code, out = bb.run(img.id, "cat /from-name /from-index")
    assert out.split() == ["1", "2"]


def test_multistage_target_and_skipped_stages(bb):
    df = ("ARG BASE=busybox\n"
          "FROM $BASE AS base\nRUN echo base > /base\n"
          "FROM base AS broken\nRUN exit 7\n"
          "FROM base AS final\nRUN cat /base > /final\n")
    img = bb.build(df)  # the broken stage is not needed by the last one: never run
    assert "final" in bb.tree(img)
    with pytest.raises(BuildError, match=r"^Dockerfile:5: RUN exit 7: the command returned a non-zero code: 7$"):
        bb.build(df, target="broken")
    img = bb.build(df, target="base")
    assert "base" in bb.tree(img) and "final" not in bb.tree(img)
    with pytest.raises(BuildError, match="target stage 'nope' could not be found"):
        bb.build(df, target="nope")


def test_arg_scoping(bb):
    first = bb.build("ARG GLOBAL=g\nFROM busybox\nARG GLOBAL\nLABEL g=$GLOBAL\n")
    assert cfg(first)["Labels"] == {"g": "g"}
    img = bb.build(
        "ARG GLOBAL=g\nARG IMG=busybox\n"
        "FROM ${IMG}\n"
        "RUN echo \"[$GLOBAL]\" > /before\n"  # a global ARG is not visible without ARG GLOBAL
        "ARG GLOBAL\n"
        "ARG LOCAL=l\n"
        "ARG EMPTY\n"
        "ENV FROM_ENV=$LOCAL LOCAL=env-wins\n"  # ENV overrides an ARG of the same name
        "RUN echo \"[$GLOBAL][$LOCAL][${EMPTY-unset}]\" > /after\n"
        "LABEL g=$GLOBAL l=$LOCAL\n"
        "FROM busybox\n"
        "COPY --from=0 /after /after\n"
        "RUN echo \"[$LOCAL][$GLOBAL]\" > /other-stage\n", build_args={"GLOBAL": "cli"})
    code, out = bb.run(img.id, "cat /after /other-stage")
    assert out.split() == ["[cli][env-wins][unset]", "[][]"]
    stage0 = bb.build(
        "ARG GLOBAL=g\nFROM busybox\nRUN echo \"[$GLOBAL]\" > /before\nARG GLOBAL\nARG LOCAL=l\n"
        "ENV FROM_ENV=$LOCAL LOCAL=env-wins\nLABEL g=$GLOBAL l=$LOCAL\n", build_args={"GLOBAL": "cli"})
    code, out = bb.run(stage0.id, "cat /before")
    assert out.split() == ["[]"]
    assert cfg(stage0)["Labels"] == {"g": "cli", "l": "env-wins"}
    assert "FROM_ENV=l" in cfg(stage0)["Env"]


def test_predefined_proxy_args_and_platform_args(bb):
    img = bb.build("FROM busybox\nARG TARGETARCH\nRUN echo \"$http_proxy $TARGETARCH\" > /p\n",
                   build_args={"http_proxy": "http://proxy:3128"})
    code, out = bb.run(img.id, "cat /p")
    assert out.split()[0] == "http://proxy:3128" and out.split()[1] in ("amd64", "arm64", "arm", "386", "ppc64le",
                                                                        "s390x", "riscv64")
    assert "proxy:3128" not in img.config["history"][-1]["created_by"]  # proxies stay out of the history


def test_unused_build_arg_warns(bb):
    img = bb.build("FROM busybox\nARG USED\n", build_args={"USED": "1", "NOT_USED": "2"})
    assert img.build_warnings == ["one or more build-args ['NOT_USED'] were not consumed"]


def test_heredocs(bb):
    img = bb.build(
        "FROM busybox\n"
        "ARG NAME=world\n"
        "RUN <<EOF\n"
        "echo one > /h1\n"
        "echo \"$NAME\" >> /h1\n"
        "EOF\n"
        "RUN <<EOF\n"
        "#!/bin/sh -e\n"
        "echo \"script $0\" > /h2\n"
        "EOF\n"
        "RUN cat <<A > /h3 && cat <<B >> /h3\n"
        "first\n"
        "A\n"
        "second\n"
        "B\n"
        "COPY <<EOF /etc/greeting\n"
        "hello $NAME\n"
        "EOF\n"
        "COPY <<'EOF' /etc/raw\n"
        "hello $NAME\n"
        "EOF\n"
        "COPY <<-EOF /etc/tabs\n"
        "\tindented\n"
        "\tEOF\n", build_args={"NAME": "jupybox"})
    code, out = bb.run(img.id, "cat /h1 /h2 /h3 /etc/greeting /etc/raw /etc/tabs; ls /dev/pipes 2>&1 | head -1")
    lines = out.split("\n")
    assert lines[:8] == ["one", "jupybox", "script /dev/pipes/EOF", "first", "second", "hello jupybox",
                         "hello $NAME", "indented"]
    t = bb.tree(img)
    assert t["etc/greeting"].mode == 0o644 and "dev/pipes" not in t


def test_add_local_archives_and_plain_files(bb, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("pkg/bin/tool", b"#!/bin/sh\necho tool\n"), ("pkg/README", b"readme")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o755 if name.endswith("tool") else 0o644
            ti.uid = ti.gid = 123
            tar.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("pkg/link")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "bin/tool"
        tar.addfile(ti)
    bb.files({"pkg.tar.gz": buf.getvalue(), "not-a-tar.gz": "plain text", "plain.txt": "p"})
    img = bb.build("FROM busybox\nADD pkg.tar.gz /opt/\nADD pkg.tar.gz /opt2\nADD not-a-tar.gz plain.txt /files/\n")
    t = bb.tree(img)
    assert t["opt/pkg/bin/tool"].mode == 0o755 and t["opt/pkg/bin/tool"].uid == 123
    assert t["opt/pkg/link"].target == "bin/tool" and t["opt2/pkg/README"].kind == "file"
    assert t["files/not-a-tar.gz"].kind == "file" and t["files/plain.txt"].kind == "file"
    assert "pkg.tar.gz" not in str(sorted(t))


def test_add_url(bb, tmp_path):
    import http.server
    import threading

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "remote.txt").write_text("remote content")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"))  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/remote.txt"
        img = bb.build(f"FROM busybox\nADD {url} /dl/\nADD {url} /named\n")
        t = bb.tree(img)
        assert t["dl/remote.txt"].mode == 0o600 and t["named"].size == len("remote content")
        with pytest.raises(BuildError, match="digest mismatch"):
            bb.build(f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /x\n")
        import hashlib

        good = hashlib.sha256(b"remote content").hexdigest()
        img = bb.build(f"FROM busybox\nADD --checksum=sha256:{good} --chmod=755 {url} /checked\n")
        assert bb.tree(img)["checked"].mode == 0o755  # BuildKit's testAddURLChmod
        with pytest.raises(BuildError, match="checksum can't be specified for multiple sources"):
            bb.build(f"FROM busybox\nADD --checksum=sha256:{good} {url} {url} /two/\n")
    finally:
        srv.shutdown()
        srv.server_close()


def test_dockerignore(bb):
    bb.files({".dockerignore": "*.log\nsecret*\nbuild/\n!build/keep.txt\n**/*.tmp\n", "app.py": "app",
              "debug.log": "log", "secret.key": "k", "build/out.o": "o", "build/keep.txt": "keep",
              "src/x.tmp": "t", "src/y.py": "y"})
    img = bb.build("FROM busybox\nCOPY . /ctx/\n")
    files = sorted(k[4:] for k, n in bb.tree(img).items() if k.startswith("ctx/") and n.kind == "file")
    assert files == [".dockerignore", "Dockerfile", "app.py", "build/keep.txt", "src/y.py"]
    with pytest.raises(BuildError, match=r"Dockerfile:2: COPY secret.key /: file not found in build context or "
                                         r"excluded by .dockerignore"):
        bb.build("FROM busybox\nCOPY secret.key /\n")


def test_onbuild_triggers_run_in_child_build(bb):
    bb.build("FROM busybox\nONBUILD COPY marker.txt /marker\nONBUILD RUN echo triggered > /triggered\n",
             files={"marker.txt": "m"}, tags=["parent:1"])
    child = bb.build("FROM parent:1\nRUN cat /triggered /marker > /both\n")
    assert cfg(child).get("OnBuild") in (None, [])
    code, out = bb.run(child.id, "cat /both")
    assert out.split() == ["triggered", "m"]
    grandchild = bb.build("FROM " + child.id + "\nRUN true\n")
    assert "both" in bb.tree(grandchild)


def test_escape_directive_and_continuations(bb):
    img = bb.build("# escape=`\nFROM busybox\nRUN echo a `\n  b > /out\nLABEL path=c:\\dir\n")
    code, out = bb.run(img.id, "cat /out")
    assert out.strip() == "a b" and cfg(img)["Labels"] == {"path": "c:\\dir"}


def test_scratch_base(bb):
    bb.files({"hello.txt": "hi"})
    img = bb.build("FROM scratch\nCOPY hello.txt /\nCMD [\"/hello\"]\n")
    t = bb.tree(img)
    assert list(t) == ["hello.txt"] and cfg(img)["Cmd"] == ["/hello"]
    assert cfg(img)["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_labels_option_and_tags(bb):
    img = bb.build("FROM busybox\nLABEL a=1\n", labels={"b": "2", "a": "cli"}, tags=["one:x", "two"])
    assert cfg(img)["Labels"] == {"a": "cli", "b": "2"}
    assert sorted(img.refs) == ["one:x", "two:latest"]


def test_dockerfile_from_text_and_other_file(bb):
    bb.files({"sub/Dockerfile.dev": "FROM busybox\nLABEL from=file\n",
              "sub/Dockerfile.dev.dockerignore": "ignored.txt\n", "ignored.txt": "x"})
    img = bb.build(file=str(bb.ctx / "sub" / "Dockerfile.dev"))
    assert cfg(img)["Labels"] == {"from": "file"}
    with pytest.raises(BuildError, match="excluded by .dockerignore"):
        (bb.ctx / "sub" / "Dockerfile.dev").write_text("FROM busybox\nCOPY ignored.txt /\n")
        bb.build(file=str(bb.ctx / "sub" / "Dockerfile.dev"))
    img = bb.build(file="FROM busybox\nLABEL from=text\n")
    assert cfg(img)["Labels"] == {"from": "text"}


def test_pull_missing_base_image(bb, registry):
    from jupybox.registry import push

    bb.store.tag("busybox:latest", f"{registry.host}/lib/bb:1")
    push(bb.store, f"{registry.host}/lib/bb:1")
    bb.store.remove(f"{registry.host}/lib/bb:1")
    img = bb.build(f"FROM {registry.host}/lib/bb:1\nRUN echo pulled > /p\n")
    assert bb.store.exists(f"{registry.host}/lib/bb:1")
    assert "p" in bb.tree(img)


def test_no_leftovers_after_success(bb):
    bb.build("FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n", tags=["clean"])
    assert bb.leftovers() == []
    names = [i.name for i in bb.store.list()]
    assert sorted(names) == ["busybox:latest", "clean:latest", "host:latest"]


def test_network_modes(bb):
    img = bb.build("FROM busybox\nRUN ls /sys/class/net > /none\nRUN --network=host ls /sys/class/net > /host\n")
    code, out = bb.run(img.id, "echo none: $(cat /none); echo host: $(cat /host)")
    none, host = out.splitlines()
    assert none == "none: lo"
    assert host != "host: lo" and len(host.split()) > 2  # the host's interfaces (more than lo)
    img = bb.build("FROM busybox\nRUN ls /sys/class/net > /all\n", network="host")
    code, out = bb.run(img.id, "cat /all")
    assert out.split() != ["lo"]


def test_no_context(bb):
    from jupybox.dockerfile import build

    img = build(None, "FROM busybox\nRUN echo no-context > /n\n", root=bb.root, runner="in-process")
    assert "n" in bb.tree(img)
    with pytest.raises(BuildError, match="file not found in build context"):
        build(None, "FROM busybox\nCOPY x /x\n", root=bb.root, runner="in-process")


def test_context_symlinks_never_lead_outside(bb, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    bb.files({"escape": {"link": str(outside)}, "rel-escape": {"link": "../outside"}, "inside.txt": "in",
              "abs-inside": {"link": "/inside.txt"}})
    for src in ("escape/secret", "rel-escape/secret", "escape/*", "escape", "rel-escape"):
        with pytest.raises(BuildError, match="file not found|no source files"):
            bb.build(f"FROM busybox\nCOPY {src} /x\n")
    img = bb.build("FROM busybox\nCOPY abs-inside /y\n")  # an absolute link is followed inside the context
    t = bb.tree(img)
    assert t["y"].digest == __import__("hashlib").sha256(b"in").hexdigest()
    assert not any("secret" in k for k in t)


def test_a_dockerfile_that_is_not_utf8_builds_as_buildkit_builds_it(bb):
    """BuildKit reads bytes: a Latin-1 byte reaches the RUN command as it is, and Go's JSON writes
    it as U+FFFD in the config."""
    bb.files({"Dockerfile": b"# caf\xe9\nFROM busybox\nRUN echo -n caf\xe9 > /f\nLABEL k=caf\xe9\n"})
    img = bb.build()
    tree = bb.tree(img)
    import hashlib

    assert tree["f"].digest == hashlib.sha256(b"caf\xe9").hexdigest()
    assert img.config["config"]["Labels"] == {"k": "caf\ufffd"}
    assert img.config["history"][-2]["created_by"].endswith("echo -n caf\ufffd > /f")


def test_copy_link_gives_the_same_image(bb):
    """COPY --link (BuildKit: a layer that does not depend on the one below) is accepted; jupybox's
    COPY layers never depend on the one below, so the image is the same."""
    bb.files({"a/f": "x", "g": "y"})
    plain = bb.build("FROM busybox\nCOPY a /dst/\nCOPY --chmod=600 g /g\n")
    linked = bb.build("FROM busybox\nCOPY --link a /dst/\nCOPY --link=true --chmod=600 g /g\n")
    assert bb.tree(plain) == bb.tree(linked)
    assert [d["digest"] for d in plain.layers] == [d["digest"] for d in linked.layers]


def test_expose_with_a_nested_modifier(bb):
    """EXPOSE splits words after expansion; a modifier's nested word does not eat what came
    before it (BuildKit's does: see jupybox.dockerfile.expand._Words)."""
    img = bb.build("FROM scratch\nENV P=8\nEXPOSE 80${P#x} 90${Q:-9}/udp\n")
    assert img.config["config"]["ExposedPorts"] == {"808/tcp": {}, "909/udp": {}}
