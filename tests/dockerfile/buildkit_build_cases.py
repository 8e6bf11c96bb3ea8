"""Build cases of BuildKit's integration tests (``frontend/dockerfile/dockerfile_*_test.go`` in
moby/buildkit, commit 73ed6825c4b7, Apache-2.0) that need no network, as a table.

Each case: ``source`` (the Go test it comes from), ``dockerfile``, context ``files``, build options
(``build_args``, ``secrets``, ``target``, ``network``), and what BuildKit's test checks: the files of
the exported result (``expect``: path → content, as its ``type=local`` exports are read), or an
``error`` the build must fail with. ``alpine`` is replaced by ``busybox`` (no registry here), and
the busybox here is Debian's busybox-static: it has no ``adduser`` (:data:`ADDUSER` writes the
same /etc/passwd and /etc/group lines) and its awk is ``/usr/bin/awk`` (BuildKit's image: /bin).
"""

TARGETSTAGE = """
FROM busybox AS base
WORKDIR /out
RUN echo -n "value:$TARGETSTAGE" > /out/first
ARG TARGETSTAGE
RUN echo -n "value:$TARGETSTAGE" > /out/second
FROM scratch AS foo
COPY --from=base /out/ /
FROM scratch
COPY --from=base /out/ /
"""

ADDUSER = ("echo 'user:x:1000:1000:Linux User,,,:/home/user:/bin/sh' >> /etc/passwd"
           " && echo 'user:x:1000:' >> /etc/group && mkdir -p /home/user && chown user:user /home/user")

CASES = [
    # ---------------------------------------------------------------- heredocs
    dict(source="dockerfile_heredoc_test.go testCopyHeredoc", dockerfile="""
FROM busybox AS build
RUN """ + ADDUSER + """
WORKDIR /dest
COPY <<EOF single
single file
EOF
COPY <<EOF <<EOF2 double/
first file
EOF
second file
EOF2
RUN mkdir -p /permfiles
COPY --chmod=777 <<EOF /permfiles/all
dummy content
EOF
COPY --chmod=0644 <<EOF /permfiles/rw
dummy content
EOF
COPY --chown=user:user <<EOF /permfiles/owned
dummy content
EOF
RUN stat -c "%04a" /permfiles/all >> perms && \\
\tstat -c "%04a" /permfiles/rw >> perms && \\
\tstat -c "%U:%G" /permfiles/owned >> perms
FROM scratch
COPY --from=build /dest /
""", expect={"single": "single file\n", "double/EOF": "first file\n", "double/EOF2": "second file\n",
             "perms": "0777\n0644\nuser:user\n"}),
    dict(source="dockerfile_heredoc_test.go testCopyHeredocSpecialSymbols", dockerfile="""
FROM scratch
COPY <<EOF quotefile
"quotes in file"
EOF
COPY <<EOF slashfile1
\\
EOF
COPY <<EOF slashfile2
\\\\
EOF
COPY <<EOF slashfile3
\\$
EOF
COPY <<"EOF" rawslashfile1
\\
EOF
COPY <<"EOF" rawslashfile2
\\\\
EOF
COPY <<"EOF" rawslashfile3
\\$
EOF
""", expect={"quotefile": '"quotes in file"\n', "slashfile1": "\n", "slashfile2": "\\\n", "slashfile3": "$\n",
             "rawslashfile1": "\\\n", "rawslashfile2": "\\\\\n", "rawslashfile3": "\\$\n"}),
    dict(source="dockerfile_heredoc_test.go testRunBasicHeredoc", dockerfile="""
FROM busybox AS build
RUN <<EOF
echo "i am" >> /dest
whoami >> /dest
EOF
FROM scratch
COPY --from=build /dest /dest
""", expect={"dest": "i am\nroot\n"}),
    dict(source="dockerfile_heredoc_test.go testRunFakeHeredoc", dockerfile="""
FROM busybox AS build
SHELL ["/usr/bin/awk"]
RUN <<EOF
BEGIN {
\tprint "foo" > "/dest"
}
EOF
FROM scratch
COPY --from=build /dest /dest
""", expect={"dest": "foo\n"}),
    dict(source="dockerfile_heredoc_test.go testRunShebangHeredoc", dockerfile="""
FROM busybox AS build
WORKDIR /dest
RUN <<EOF
#!/usr/bin/awk -f
BEGIN {
\tprint "hello" >> "./out1"
\tprint "world" >> "./out1"
}
EOF
RUN <<-EOF
\t#!/usr/bin/awk -f
\tBEGIN {
\t\tprint "hello" >> "./out2"
\t\tprint "world" >> "./out2"
\t}
EOF
FROM scratch
COPY --from=build /dest /
""", expect={"out1": "hello\nworld\n", "out2": "hello\nworld\n"}),
    dict(source="dockerfile_heredoc_test.go testRunComplexHeredoc", dockerfile="""
FROM busybox AS build
WORKDIR /dest
RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \\
\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2
hello WORLD
EOF1
HELLO world
EOF2
RUN <<EOF 3<<IN1 4<<IN2 awk -f -
BEGIN {
\twhile ((getline line < "/proc/self/fd/3") > 0)
\t\tprint tolower(line) > "./fd3"
\twhile ((getline line < "/proc/self/fd/4") > 0)
\t\tprint toupper(line) > "./fd4"
}
EOF
hello WORLD
IN1
HELLO world
IN2
FROM scratch
COPY --from=build /dest /
""", expect={"out1": "hello world\n", "out2": "HELLO WORLD\n", "fd3": "hello world\n", "fd4": "HELLO WORLD\n"}),
    dict(source="dockerfile_heredoc_test.go testHeredocIndent", dockerfile="""
FROM busybox AS build
COPY <<EOF /dest/foo-copy
\tfoo
EOF
COPY <<-EOF /dest/bar-copy
\tbar
EOF
RUN <<EOF
echo "
\tfoo" > /dest/foo-run
EOF
RUN <<-EOF
echo "
\tbar" > /dest/bar-run
EOF
RUN <<EOF
#!/bin/sh
echo "
\tfoo" > /dest/foo2-run
EOF
RUN <<-EOF
#!/bin/sh
echo "
\tbar" > /dest/bar2-run
EOF
RUN <<EOF sh > /dest/foo3-run
echo "
\tfoo"
EOF
RUN <<-EOF sh > /dest/bar3-run
echo "
\tbar"
EOF
FROM scratch
COPY --from=build /dest /
""", expect={"foo-copy": "\tfoo\n", "foo-run": "\n\tfoo\n", "foo2-run": "\n\tfoo\n", "foo3-run": "\n\tfoo\n",
             "bar-copy": "bar\n", "bar-run": "\nbar\n", "bar2-run": "\nbar\n", "bar3-run": "\nbar\n"}),
    dict(source="dockerfile_heredoc_test.go testHeredocVarSubstitution", dockerfile="""
FROM busybox as build
ARG name=world
COPY <<EOF /dest/c1
Hello ${name}!
EOF
COPY <<'EOF' /dest/c2
Hello ${name}!
EOF
COPY <<"EOF" /dest/c3
Hello ${name}!
EOF
COPY <<EOF /dest/q1
Hello '${name}'!
EOF
COPY <<EOF /dest/q2
Hello "${name}"!
EOF
COPY <<'EOF' /dest/qsingle1
Hello '${name}'!
EOF
COPY <<'EOF' /dest/qsingle2
Hello "${name}"!
EOF
COPY <<"EOF" /dest/qdouble1
Hello '${name}'!
EOF
COPY <<"EOF" /dest/qdouble2
Hello "${name}"!
EOF
RUN <<EOF
greeting="Hello"
echo "${greeting} ${name}!" > /dest/r1
EOF
RUN <<EOF
name="new world"
echo "Hello ${name}!" > /dest/r2
EOF
FROM scratch
COPY --from=build /dest /
""", expect={"c1": "Hello world!\n", "c2": "Hello ${name}!\n", "c3": "Hello ${name}!\n", "q1": "Hello 'world'!\n",
             "q2": 'Hello "world"!\n', "qsingle1": "Hello '${name}'!\n", "qsingle2": 'Hello "${name}"!\n',
             "qdouble1": "Hello '${name}'!\n", "qdouble2": 'Hello "${name}"!\n', "r1": "Hello world!\n",
             "r2": "Hello new world!\n"}),
    # ---------------------------------------------------------------- WORKDIR
    dict(source="dockerfile_workdir_test.go testWorkdirCreatesDir", dockerfile="""
FROM scratch
WORKDIR /foo
WORKDIR /
""", expect={"foo/": None}),
    dict(source="dockerfile_workdir_test.go testWorkdirUser", dockerfile="""
FROM busybox
RUN """ + ADDUSER + """
USER user
WORKDIR /mydir
RUN [ "$(stat -c "%U %G" /mydir)" == "user user" ]
""", expect={}),
    dict(source="dockerfile_workdir_test.go testWorkdirCopyIgnoreRelative", dockerfile="""
FROM scratch AS base
WORKDIR /foo
COPY Dockerfile /
FROM scratch
# relative path still loaded as absolute
COPY --from=base Dockerfile .
""", expect={"Dockerfile": ...}),
    dict(source="dockerfile_workdir_test.go testWorkdirExists", dockerfile="""
FROM busybox
RUN """ + ADDUSER + """
RUN mkdir /mydir && chown user:user /mydir
WORKDIR /mydir
RUN [ "$(stat -c "%U %G" /mydir)" == "user user" ]
""", expect={}),
    # ---------------------------------------------------------------- RUN --mount
    dict(source="dockerfile_mount_test.go testMountContext", dockerfile="""
FROM busybox
RUN --mount=target=/context [ "$(cat /context/testfile)" == "contents0" ]
""", files={"testfile": "contents0"}, expect={}),
    dict(source="dockerfile_mount_test.go testMountTmpfs", dockerfile="""
FROM busybox
RUN --mount=target=/mytmp,type=tmpfs touch /mytmp/foo
RUN [ ! -f /mytmp/foo ]
""", expect={}),
    dict(source="dockerfile_mount_test.go testMountInvalid", dockerfile="""
FROM scratch
RUN --mont=target=/mytmp,type=tmpfs /bin/true
""", error="unknown flag: --mont (did you mean mount?)"),
    dict(source="dockerfile_mount_test.go testMountInvalid", dockerfile="""
FROM scratch
RUN --mount=typ=tmpfs /bin/true
""", error="unexpected key 'typ' in 'typ=tmpfs' (did you mean type?)"),
    dict(source="dockerfile_mount_test.go testMountInvalid", dockerfile="""
FROM scratch
RUN --mount=type=tmp /bin/true
""", error='unsupported mount type "tmp" (did you mean tmpfs?)'),
    dict(source="dockerfile_mount_test.go testCacheMountUser", dockerfile="""
FROM busybox
RUN --mount=type=cache,target=/mycache,uid=1001,gid=1002,mode=0751 [ "$(stat -c "%u %g %f" /mycache)" == "1001 1002 41e9" ]
""", expect={}),
    dict(source="dockerfile_mount_test.go testCacheMountDefaultID", dockerfile="""
FROM busybox
RUN --mount=type=cache,target=/mycache touch /mycache/foo
RUN --mount=type=cache,target=/mycache2 [ ! -f /mycache2/foo ]
RUN --mount=type=cache,target=/mycache [ -f /mycache/foo ]
""", expect={}),
    dict(source="dockerfile_mount_test.go testMountEnvVar", dockerfile="""
FROM busybox
ENV SOME_PATH=/mycache
RUN --mount=type=cache,target=/mycache touch /mycache/foo
RUN --mount=type=cache,target=$SOME_PATH [ -f $SOME_PATH/foo ]
""", expect={}),
    dict(source="dockerfile_mount_test.go testMountArg", dockerfile="""
FROM busybox
ARG MNT_TYPE=cache
RUN --mount=type=$MNT_TYPE,target=/mycache2 touch /mycache2/foo
RUN --mount=type=cache,target=/mycache2 [ -f /mycache2/foo ]
""", expect={}),
    dict(source="dockerfile_mount_test.go testMountEnvAcrossStages", dockerfile="""
FROM busybox as stage1
ENV MNT_ID=mycache
ENV MNT_TYPE2=cache
RUN --mount=type=cache,id=mycache,target=/abcabc touch /abcabc/foo
RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/cbacba [ -f /cbacba/foo ]
FROM stage1
RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/whatever [ -f /whatever/foo ]
""", expect={}),
    dict(source="dockerfile_mount_test.go testMountMetaArg", dockerfile="""
ARG META_PATH=/tmp/meta
FROM busybox
ARG META_PATH
RUN --mount=type=cache,id=mycache,target=/tmp/meta touch /tmp/meta/foo
RUN --mount=type=cache,id=mycache,target=$META_PATH [ -f /tmp/meta/foo ]
""", expect={}),
    dict(source="dockerfile_mount_test.go testMountFromError", dockerfile="""
FROM busybox as test
RUN touch /tmp/test
FROM busybox
ENV ttt=test
RUN --mount=from=$ttt,type=cache,target=/tmp ls
""", error="'from' doesn't support variable expansion, define alias stage instead"),
    dict(source="dockerfile_mount_test.go testMountTmpfsSize", dockerfile="""
FROM busybox AS base
RUN --mount=type=tmpfs,target=/dev/shm,size=128m mount | grep /dev/shm > /tmpfssize
FROM scratch
COPY --from=base /tmpfssize /
""", expect={"tmpfssize": ("contains", "size=131072k")}),
    dict(source="dockerfile_mount_test.go testCacheMountSourceEscape", dockerfile="""
FROM busybox AS init
RUN --mount=type=cache,id=sourceescape,target=/cache mkdir -p /cache/sel && echo benign > /cache/sel/benign.txt
FROM init AS link
RUN --mount=type=cache,id=sourceescape,target=/cache rm -rf /cache/sel && ln -s /etc /cache/sel
FROM link AS victim
RUN --mount=type=cache,id=sourceescape,source=sel,target=/victim cat /victim/hostname
FROM scratch
COPY --from=victim /etc/hostname /hostname
""", error="cache mount source 'sel'"),
    # ---------------------------------------------------------------- secrets
    dict(source="dockerfile_secrets_test.go testSecretFileParams", dockerfile="""
FROM busybox
RUN --mount=type=secret,required=false,mode=741,uid=100,gid=102,target=/mysecret [ "$(stat -c "%u %g %f" /mysecret)" = "100 102 81e1" ]
RUN [ ! -f /mysecret ] # check no stub left behind
""", secrets={"mysecret": b"pw"}, expect={}),
    dict(source="dockerfile_secrets_test.go testSecretRequiredWithoutValue", dockerfile="""FROM busybox
\t\tRUN --mount=type=secret,required,id=mysecret foo""", error="secret mysecret: not found"),
    dict(source="dockerfile_secrets_test.go testSecretAsEnviron", dockerfile="""
FROM busybox
ENV SECRET_ENV=foo
RUN --mount=type=secret,id=mysecret,env=SECRET_ENV [ "$SECRET_ENV" == "pw" ] && [ ! -f /run/secrets/mysecret ] || false
""", secrets={"mysecret": b"pw"}, expect={}),
    dict(source="dockerfile_secrets_test.go testSecretAsEnvironWithFileMount", dockerfile="""
FROM busybox
RUN --mount=type=secret,id=mysecret,target=/run/secrets/secret,env=SECRET_ENV [ "$SECRET_ENV" == "pw" ] && [ -f /run/secrets/secret ] || false
""", secrets={"mysecret": b"pw"}, expect={}),
    # ---------------------------------------------------------------- ARG
    dict(source="dockerfile_args_test.go testGlobalArgErrors", dockerfile="""
ARG FOO=${FOO:?"custom error"}
FROM busybox
""", error="FOO: custom error"),
    dict(source="dockerfile_args_test.go testGlobalArgErrors", dockerfile="""
ARG FOO=${FOO:?"custom error"}
FROM busybox
""", build_args={"FOO": "bar"}, expect={}),
    dict(source="dockerfile_args_test.go testArgDefaultExpansion", dockerfile="""
FROM scratch
ARG FOO
ARG BAR=${FOO:?"foo missing"}
""", error="FOO: foo missing"),
    dict(source="dockerfile_args_test.go testArgDefaultExpansion", dockerfile="""
FROM scratch
ARG FOO
ARG BAR=${FOO:?"foo missing"}
""", build_args={"FOO": "123"}, expect={}),
    dict(source="dockerfile_args_test.go testArgDefaultExpansion", dockerfile="""
FROM scratch
ARG FOO
ARG BAR=${FOO:?"foo missing"}
""", build_args={"BAR": "123"}, expect={}),
    dict(source="dockerfile_args_test.go testMultiArgs", dockerfile="""
ARG a1="foo bar" a2=box
ARG a3="$a2-foo"
FROM busy$a2 AS build
ARG a3 a4="123 456" a1
RUN echo -n "$a1:$a3:$a4" > /out
FROM scratch
COPY --from=build /out .
""", expect={"out": "foo bar:box-foo:123 456"}),
    dict(source="dockerfile_args_test.go testQuotedMetaArgs", dockerfile="""
ARG a1="box"
ARG a2="$a1-foo"
FROM busy$a1 AS build
ARG a2
ARG a3="bar-$a2"
RUN echo -n $a3 > /out
FROM scratch
COPY --from=build /out .
""", expect={"out": "bar-box-foo"}),
    dict(source="dockerfile_args_test.go testTargetStageNameArg", dockerfile=TARGETSTAGE, target="foo",
         expect={"first": "value:", "second": "value:foo"}),
    dict(source="dockerfile_args_test.go testTargetStageNameArg", dockerfile=TARGETSTAGE,
         expect={"first": "value:", "second": "value:default"}),
    dict(source="dockerfile_args_test.go testTargetStageNameArg", dockerfile=TARGETSTAGE + """FROM scratch AS final
COPY --from=base /out/ /
""", expect={"first": "value:", "second": "value:final"}),
    dict(source="dockerfile_args_test.go testBuiltinArgs", dockerfile="""
FROM busybox AS build
ARG FOO
ARG BAR
ARG BAZ=bazcontent
RUN echo -n $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out
FROM scratch
COPY --from=build /out /
""", build_args={"FOO": "foocontents", "http_proxy": "hpvalue", "NO_PROXY": "npvalue"},
         expect={"out": "hpvalue::npvalue::foocontents::::bazcontent"}),
    dict(source="dockerfile_args_test.go testDefaultEnvWithArgs", dockerfile="""
ARG image=idlebox
FROM busy${image#idle} AS build
ARG my_arg
ENV my_arg "my_arg=${my_arg:-def_val}"
ENV my_trimmed_arg "${my_arg%%e*}"
COPY myscript.sh myscript.sh
RUN ./myscript.sh $my_arg $my_trimmed_arg
FROM scratch
COPY --from=build /out /out
""", files={"myscript.sh": ("#!/usr/bin/env sh\necho -n $my_arg $* > /out\n", 0o700)},
         build_args={"my_arg": "override"}, expect={"out": "my_arg=override my_arg=override my_arg=ov"}),
    dict(source="dockerfile_args_test.go testEmptyStringArgInEnv", dockerfile="""
FROM busybox AS build
ARG FOO
ARG BAR=
RUN env > env.txt
FROM scratch
COPY --from=build env.txt .
""", expect={"env.txt": ("contains", "BAR=\n"), "!env.txt": "FOO="}),
    dict(source="dockerfile_args_test.go testEnvEmptyFormatting", dockerfile="""
FROM busybox AS build
ENV myenv foo%sbar
RUN [ "$myenv" = 'foo%sbar' ]
""", expect={}),
    # ---------------------------------------------------------------- COPY --chmod
    dict(source="dockerfile_copy_test.go testCopyChmod", dockerfile="""
FROM busybox AS base

RUN mkdir -m 0777 /out
COPY --chmod=0644 foo /
COPY --chmod=777 bar /baz
COPY --chmod=0 foo /foobis
COPY --chmod=777 foo /parent/foo
COPY --chmod=770 foo /parent/sub/foo

ARG mode
COPY --chmod=${mode} foo /footer

RUN stat -c "%04a" /foo  > /out/fooperm
RUN stat -c "%04a" /baz  > /out/barperm
RUN stat -c "%04a" /foobis  > /out/foobisperm
RUN stat -c "%04a" /parent  > /out/parentperm
RUN stat -c "%04a" /parent/sub  > /out/subparentperm
RUN stat -c "%04a" /footer  > /out/footerperm
FROM scratch
COPY --from=base /out /
""", files={"foo": ("foo-contents", 0o600), "bar": ("bar-contents", 0o700)}, build_args={"mode": "755"},
         expect={"fooperm": "0644\n", "barperm": "0777\n", "foobisperm": "0000\n", "parentperm": "0777\n",
                 "subparentperm": "0770\n", "footerperm": "0755\n"}),
    dict(source="dockerfile_copy_test.go testCopyInvalidChmod", dockerfile="""
FROM scratch
COPY --chmod=64a foo /
""", files={"foo": ("foo-contents", 0o600)},
         error="invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"),
    dict(source="dockerfile_copy_test.go testCopyInvalidChmod", dockerfile="""
FROM scratch
COPY --chmod=10000 foo /
""", files={"foo": ("foo-contents", 0o600)},
         error="invalid chmod parameter: '10000'. it should be octal string and between 0 and 07777"),
    # ---------------------------------------------------------------- network
    dict(source="dockerfile_runnetwork_test.go testRunNoNetwork", dockerfile="""
FROM busybox
RUN --network=none ! ip link show eth0
""", expect={}),
]
