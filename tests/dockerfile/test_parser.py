"""The Dockerfile parser and instruction validation (no root needed)."""

from __future__ import annotations

import pytest

from jupybox.dockerfile import parse
from jupybox.dockerfile.arguments import extract_flags, parse_words
from jupybox.dockerfile.heredocs import parse_heredoc
from jupybox.dockerfile.parser import parse as parse_text
from jupybox.errors import BuildError


def nodes(text):
    return parse_text(text).nodes


def test_instructions_case_insensitive_and_line_numbers():
    ns = nodes("from busybox\n\n# comment\nRun echo hi\n  cmd [\"a\"]\n")
    assert [(n.cmd, n.start) for n in ns] == [("from", 1), ("run", 4), ("cmd", 5)]
    assert ns[2].json and ns[2].args == ["a"]


def test_continuations_join_and_skip_comments_and_blank_lines():
    ns = nodes("FROM x\nRUN echo a \\\n  b \\\n# inside\n\n  c\nRUN d\n")
    assert ns[1].args == ["echo a   b   c"]
    assert (ns[1].start, ns[1].end) == (2, 6)
    assert ns[2].start == 7
    assert parse_text("FROM x\nRUN a \\\n\nb\n").warnings  # empty continuation line warned


def test_escape_directive_backtick():
    df = parse_text("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo hi\n")
    assert df.escape == "`"
    assert df.nodes[1].args == ["dir c:\\   && echo hi"]


def test_directives_only_at_top():
    df = parse_text("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n")
    assert df.escape == "`" and df.syntax == "docker/dockerfile:1"
    # after a comment, an escape "directive" is just a comment
    assert parse_text("# hello\n# escape=`\nFROM x\n").escape == "\\"
    # after an instruction too
    assert parse_text("FROM x\n# escape=`\nRUN a\n").escape == "\\"


def test_directive_errors():
    with pytest.raises(BuildError, match=r"^Dockerfile:2: only one escape parser directive"):
        parse_text("# escape=`\n# escape=\\\nFROM x\n")
    with pytest.raises(BuildError, match=r"^Dockerfile:1: invalid escape token"):
        parse_text("# escape=x\nFROM x\n")


def test_json_and_shell_forms():
    ns = nodes('FROM x\nCMD ["a", "b c"]\nCMD [not json\nENTRYPOINT exec foo\n')
    assert ns[1].json and ns[1].args == ["a", "b c"]
    assert not ns[2].json and ns[2].args == ["[not json"]
    assert ns[3].args == ["exec foo"]
    with pytest.raises(BuildError, match="arrays must be comprised of strings only"):
        parse_text('FROM x\nRUN ["x", 1]\n')


def test_env_label_forms():
    ns = nodes('FROM x\nENV A=1 B="two words" C=a\\ b\nENV legacy value with spaces\nLABEL "k"="v" x=y\n')
    assert ns[1].kv == [("A", "1"), ("B", '"two words"'), ("C", "a\\ b")]
    assert ns[2].kv == [("legacy", "value with spaces")]
    assert ns[3].kv == [('"k"', '"v"'), ("x", "y")]
    with pytest.raises(BuildError, match=r"Dockerfile:2: Syntax error - can't find = in"):
        parse_text("FROM x\nENV A=1 B\n")
    with pytest.raises(BuildError, match="ENV must have two arguments"):
        parse_text("FROM x\nENV A\n")


def test_flags():
    assert extract_flags("--from=build --chown=a:b src dst") == ("src dst", ["--from=build", "--chown=a:b"])
    assert extract_flags('--chown="a b" x') == ("x", ["--chown=a b"])
    assert extract_flags("-- --x y") == ("--x y", [])
    n = nodes("FROM x\nCOPY --link --chmod=755 a b\n")[1]
    assert n.flags == ["--link", "--chmod=755"] and n.args == ["a", "b"]


def test_parse_words_keeps_quotes():
    assert parse_words('a "b c" \'d e\' f\\ g', "\\") == ["a", '"b c"', "'d e'", "f\\ g"]


def test_heredocs():
    ns = nodes("FROM x\nRUN <<EOF\necho a\necho b\nEOF\nCOPY <<-'END' /f\n\tkeep $X\n\tEND\nRUN echo after\n")
    run, copy, after = ns[1], ns[2], ns[3]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo a\necho b\n"
    assert run.heredocs[0].expand
    assert copy.heredocs[0].chomp and not copy.heredocs[0].expand and copy.heredocs[0].text() == "keep $X\n"
    assert after.start == 9
    # several heredocs on one line, read in order
    n = nodes("FROM x\nRUN cat <<A <<B\n1\nA\n2\nB\n")[1]
    assert [(h.name, h.content) for h in n.heredocs] == [("A", "1\n"), ("B", "2\n")]
    # JSON form: no heredoc
    assert not nodes('FROM x\nRUN ["cat", "<<EOF"]\n')[1].heredocs
    assert parse_heredoc("<<EOF").name == "EOF" and parse_heredoc('<<"EOF"').expand is False
    assert parse_heredoc("2<<-X").fd == 2 and parse_heredoc("<<") is None


def test_unterminated_heredoc():
    with pytest.raises(BuildError, match=r"^Dockerfile:2: unterminated heredoc"):
        parse_text("FROM x\nRUN <<EOF\necho\n")


def test_empty_file_and_bom():
    with pytest.raises(BuildError, match="file with no instructions"):
        parse_text("# only a comment\n\n")
    assert nodes("\ufeffFROM x\n")[0].cmd == "from"


def test_stages_and_meta_args():
    pf = parse("ARG V=1\nFROM busybox AS Build\nRUN x\nFROM build\nCOPY --from=build /a /b\n")
    assert [a.args for a in pf.meta_args] == [[("V", "1")]]
    assert [(s.name, s.base) for s in pf.stages] == [("build", "busybox"), ("", "build")]
    assert len(pf.stages[0].instructions) == 1


@pytest.mark.parametrize("text,line,message", [
    ("FROM x\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("FROM x\nRNU echo\n", 2, "(did you mean RUN?)"),
    ("RUN echo\nFROM x\n", 1, "no build stage in current context"),
    ("FROM x y\n", 1, "FROM requires either one or three arguments"),
    ("FROM x AS 1bad\n", 1, "invalid name for build stage"),
    ("FROM x AS a\nFROM y AS A\n", 2, "duplicate stage name"),
    ("FROM x\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ("FROM x\nCOPY --bogus=1 a b\n", 2, "unknown flag: --bogus"),
    ("FROM x\nCOPY --from a b\n", 2, "missing a value on flag: --from"),
    ("FROM x\nCOPY --chown=1 --chown=2 a b\n", 2, "duplicate flag specified: --chown"),
    ("FROM x\nADD --from=y a b\n", 2, "unknown flag: --from"),
    ("FROM x\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM x\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM x\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM x\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM x\nHEALTHCHECK NONE extra\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM x\nHEALTHCHECK FOO x\n", 2, "Unknown type"),
    ("FROM x\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM x\nHEALTHCHECK --interval=0.1ms CMD true\n", 2, "cannot be less than 1ms"),
    ("FROM x\nHEALTHCHECK --retries=0 CMD true\n", 2, "--retries must be at least 1"),
    ("FROM x\nHEALTHCHECK --interval=5 CMD true\n", 2, "invalid duration"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD"),
    ("FROM x\nONBUILD FROM y\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM x\nONBUILD BOGUS y\n", 2, "unknown instruction: BOGUS"),
    ("FROM x\nRUN --mount=from=$x,target=/x true\n", 2, "'from' doesn't support variable expansion"),
    ("FROM x\nRUN --mont=type=tmpfs,target=/x true\n", 2, "unknown flag: --mont (did you mean mount?)"),
    ("FROM x\nRUN --network=bridge true\n", 2, 'invalid network mode "bridge"'),
    ("FROM x\nARG =v\n", 2, "ARG names can not be blank"),
    ("FROM x\nCOPY a <<EOF\nx\nEOF\n", 2, "cannot accept a heredoc as a destination"),
])
def test_bad_input(text, line, message):
    with pytest.raises(BuildError) as ei:
        parse(text, "df/Dockerfile.dev")
    msg = str(ei.value)
    assert msg.startswith(f"df/Dockerfile.dev:{line}: "), msg
    assert message in msg
    assert "\n" not in msg


def test_healthcheck_options():
    pf = parse("FROM x\nHEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --retries=3 "
               "CMD curl -f http://x/ || exit 1\nHEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n")
    h1, h2 = (i.health for i in pf.stages[0].instructions)
    assert h1 == {"Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"], "Interval": 90_000_000_000,
                  "Timeout": 500_000_000, "StartPeriod": 2_000_000_000, "Retries": 3}
    assert h2 == {"Test": ["CMD", "/bin/check", "-q"]}


def test_onbuild_expression_is_kept_verbatim():
    pf = parse("FROM x\nONBUILD   RUN echo $HOME \\\n  && true\n")
    assert pf.stages[0].instructions[0].expression == "RUN echo $HOME   && true"


def test_apply_changes_uses_the_dockerfile_rules():
    from jupybox.dockerfile import apply_changes
    from jupybox.errors import UsageError

    base = {"Env": ["PATH=/bin"], "WorkingDir": "/srv"}
    out = apply_changes(['ENV A=1 B="two words"', "ENV C=$A", 'CMD ["sh", "-c", "x"]', "WORKDIR app",
                         "EXPOSE 80 53/udp", "LABEL k=v", "ENTRYPOINT exec run", "USER 1:2", "VOLUME [\"/d\"]",
                         "STOPSIGNAL SIGINT", "ONBUILD RUN make"], base)
    assert out == {"Env": ["PATH=/bin", "A=1", "B=two words", "C=1"], "WorkingDir": "/srv/app",
                   "Cmd": ["sh", "-c", "x"], "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Labels": {"k": "v"},
                   "Entrypoint": ["/bin/sh", "-c", "exec run"], "User": "1:2", "Volumes": {"/d": {}},
                   "StopSignal": "SIGINT", "OnBuild": ["RUN make"]}
    assert base == {"Env": ["PATH=/bin"], "WorkingDir": "/srv"}  # not modified in place
    for bad, why in (("RUN x", "not a valid change command"), ("EXPOSE x", "invalid containerPort"),
                     ("ENV A", "ENV must have two arguments"), ("STOPSIGNAL NOPE", "invalid signal")):
        with pytest.raises(UsageError, match=why):
            apply_changes([bad])


# ------------------------------------------------------------------------------ as BuildKit reads them


def test_whitespace_after_heredoc_operator():
    """dockerfile 1.16: blanks between << and the name."""
    ns = nodes("FROM x\nRUN << EOF\necho hi > /x\nEOF\nRUN <<- EOF\n\techo two\n\tEOF\nRUN << -EOF\nbody\n-EOF\n"
               "RUN <<  EOF  > foo\nEOF\n")
    assert [(n.cmd, [(h.name, h.text()) for h in n.heredocs]) for n in ns[1:]] == [
        ("run", [("EOF", "echo hi > /x\n")]), ("run", [("EOF", "echo two\n")]), ("run", [("-EOF", "body\n")]),
        ("run", [("EOF", "")])]


def test_flags_use_the_escape_directive():
    ns = nodes("# escape=`\nFROM x\nRUN --mount=type=cache,target=C:\\Users\\x\\cache dir\n"
               "COPY --chown=a`b c /d\n")
    assert ns[1].flags == ["--mount=type=cache,target=C:\\Users\\x\\cache"] and ns[1].args == ["dir"]
    assert ns[2].flags == ["--chown=ab"]


@pytest.mark.parametrize("sep", ["\r", "\v", "\f", "\x1c", "\x85", "\u2028"])
def test_lines_end_only_at_newline(sep):
    ns = nodes(f"FROM x\nRUN echo a{sep}b\nCMD c\n")
    assert [n.cmd for n in ns] == ["from", "run", "cmd"]
    assert ns[1].args == [f"echo a{sep}b"]


def test_a_dockerfile_that_is_not_utf8_is_read():
    df = parse_text(b"# caf\xe9\nFROM x\nRUN echo caf\xe9 > /f\nLABEL k=caf\xe9\n")
    run = df.nodes[1]
    assert run.args[0].encode("utf-8", "surrogateescape") == b"echo caf\xe9 > /f"


@pytest.mark.parametrize("text,json_form,args", [
    ('CMD ["a", NaN]', False, ['["a", NaN]']),
    ("CMD [Infinity]", False, ["[Infinity]"]),
    ("CMD [-Infinity]", False, ["[-Infinity]"]),
    ("CMD [1e400]", False, ["[1e400]"]),
    ('CMD ["\\ud800"]', True, ["\ufffd"]),
    ('CMD ["\\ud83d\\ude00"]', True, ["\U0001f600"]),
])
def test_json_as_go_reads_it(text, json_form, args):
    n = nodes(f"FROM x\n{text}\n")[1]
    assert (n.json, n.args) == (json_form, args)


def test_line_length_limit_counts_bytes():
    ok = "FROM x\nLABEL a=" + "é" * ((65535 - 8) // 2) + "\n"
    assert nodes(ok)[1].cmd == "label"
    with pytest.raises(BuildError, match=r"^Dockerfile:2: dockerfile line greater than max allowed size of 65535$"):
        parse_text("FROM x\nLABEL a=" + "é" * (65536 // 2) + "\n")
