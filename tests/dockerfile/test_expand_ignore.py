"""Variable expansion (BuildKit's shell lexer rules) and .dockerignore (moby/patternmatcher rules)."""

from __future__ import annotations

import os
import random
import re

import pytest

from jupybox.dockerfile.context import ContextFS
from jupybox.dockerfile.dockerignore import Matcher, clean, read_patterns
from jupybox.dockerfile.expand import MAX_GROWTH, ExpandError, Lexer
from jupybox.dockerfile.shellpattern import Pattern, trim_prefix

ENV = {"A": "a b", "E": "", "P": "/usr/local/bin/file.tar.gz", "N": "1"}


@pytest.mark.parametrize("word,expected", [
    ("$A", "a b"), ("${A}x", "a bx"), ("x$Ny", "x"), ("x${N}y", "x1y"), ("$UNSET", ""), ("${UNSET}", ""),
    ("$", "$"), ("$$", ""), ("a$", "a$"), ("${A:-d}", "a b"), ("${UNSET:-d}", "d"), ("${E:-d}", "d"),
    ("${E-d}", ""), ("${UNSET-d}", "d"), ("${A:+s}", "s"), ("${E:+s}", ""), ("${E+s}", "s"), ("${UNSET+s}", ""),
    ("${UNSET:-$N}", "1"), ("${UNSET:-${A:+nested}}", "nested"),
    ("${P#*/}", "usr/local/bin/file.tar.gz"), ("${P##*/}", "file.tar.gz"), ("${P%.*}", "/usr/local/bin/file.tar"),
    ("${P%%.*}", "/usr/local/bin/file"), ("${P/local/opt}", "/usr/opt/bin/file.tar.gz"),
    ("${P//l/L}", "/usr/LocaL/bin/fiLe.tar.gz"),
    ("'$A'", "$A"), ('"$A"', "a b"), ('"\\$A"', "$A"), ("\\$A", "$A"), ('"a\\"b"', 'a"b'), ('"a\\x"', "a\\x"),
    ("a\\ b", "a b"), ("'a'\"b\"c", "abc"), ('"${A}"-x', "a b-x"),
])
def test_expansion(word, expected):
    assert Lexer().process_word(word, ENV) == expected


def test_words_split_after_expansion():
    lx = Lexer()
    assert lx.process_words("$A c", ENV) == ["a", "b", "c"]
    assert lx.process_words('"$A" c', ENV) == ["a b", "c"]
    assert lx.process_words("x\\ y z", ENV) == ["x y", "z"]


def test_backtick_escape():
    lx = Lexer("`")
    assert lx.process_word("c:\\dir `$A", ENV) == "c:\\dir $A"


def test_used_names_are_recorded():
    r = Lexer().process("$A ${UNSET:-x} '$SKIPPED'", ENV)
    assert r.used == {"A", "UNSET"}


@pytest.mark.parametrize("word,message", [
    ("${A", "missing '}'"), ("${}", "bad substitution"), ("${:x}", "bad substitution"),
    ("'open", "matching single-quote"), ('"open', "matching double-quote"), ("${UNSET:?must be set}", "must be set"),
    ("${UNSET?}", "is not allowed to be unset"), ("${E:?}", "is not allowed to be empty"),
    ("${A:x}", "unsupported modifier"),
    # bash-like, but not bash: BuildKit refuses them
    ("${P:#*/}", r"unsupported modifier \(:#\)"), ("${P:##*/}", r"unsupported modifier \(:#\)"),
    ("${P:%.*}", r"unsupported modifier \(:%\)"), ("${P:%%.*}", r"unsupported modifier \(:%\)"),
])
def test_expansion_errors(word, message):
    with pytest.raises(ExpandError, match=message):
        Lexer().process_word(word, ENV)


def _regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """BuildKit's convertShellPatternToRegex, with Python's backtracking re (small inputs only)."""
    out = ["^"] if anchored else []
    for t in pattern:
        out.append((".*" if greedy else ".*?") if t == "*" else "." if t == "?" else re.escape(t))
    return re.compile("".join(out))


def _go_replace_all(rx: re.Pattern, value: str, repl: str) -> str:
    """Go's ReplaceAllString loop (an empty match right after a match is not replaced: Python's
    re.sub replaces it)."""
    out, last, pos = [], 0, 0
    while pos <= len(value):
        m = rx.search(value, pos)
        if m is None:
            break
        out.append(value[last:m.start()])
        if m.end() > last or m.start() == 0:
            out.append(repl)
        last = m.end()
        pos = pos + 1 if pos + 1 > m.end() else m.end()
    return "".join(out) + value[last:]


def test_patterns_match_as_the_regex_does():
    rnd = random.Random(17)
    for _ in range(3000):
        pat = "".join(rnd.choice("ab*?") for _ in range(rnd.randint(1, 6)))
        val = "".join(rnd.choice("ab\n") for _ in range(rnd.randint(0, 9)))
        for greedy in (False, True):
            m = _regex(pat, greedy, True).search(val)
            assert trim_prefix(pat, val, greedy) == (val[m.end():] if m else val), (pat, val, greedy)
        rx = _regex(pat, True, False)
        assert Pattern(pat).replace(val, "<>", False) == rx.sub(lambda _m: "<>", val, count=1), (pat, val)
        assert Pattern(pat).replace(val, "<>", True) == _go_replace_all(rx, val, "<>"), (pat, val)


@pytest.mark.timeout(120)  # a guard only: with a backtracking regex this never ends
def test_patterns_do_not_backtrack():
    lx = Lexer()
    env = {"V": "a" * 100_000}
    assert lx.process_word("${V#*a*a*a*a*a*a*b}", env) == env["V"]
    assert lx.process_word("${V%%a*a*a*a*a*a*b}", env) == env["V"]
    assert lx.process_word("${V//*a*a*a*a*a*b/x}", env) == env["V"]


def test_replacement_growth_is_bounded():
    with pytest.raises(ExpandError, match=f"more than {MAX_GROWTH} characters"):
        Lexer().process_word("${V//?/$W}", {"V": "a" * 1000, "W": "b" * 1000})


def test_expansion_growth_is_bounded_and_counted():
    lx = Lexer()
    big = "x" * (MAX_GROWTH // 2)
    assert len(lx.process_word("${A}${A}", {"A": big})) == MAX_GROWTH
    with pytest.raises(ExpandError, match=f"more than {MAX_GROWTH} characters"):
        lx.process_word("${A}${A}x${A}", {"A": big})


# ------------------------------------------------------------------------------ .dockerignore

@pytest.mark.parametrize("pattern,path,hit", [
    ("**", "file", True), ("**", "dir/file", True), ("**/", "dir/file", True), ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/dir2/file", True), ("**/dir", "dir", True),
    ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "dir/file", True), ("**/file*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("a**/*.txt", "a/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False), ("a[^b-d]e", "aze", True),
    (".*", ".foo", True), (".*", "foo", False), ("abc.def", "abcdef", False), ("abc?def", "abcZdef", True),
    ("**/foo/bar", "foo/bar", True), ("abc/**", "abc", False), ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True), ("*", "fileutils.go", True), ("*.go", "fileutils.go", True),
    ("docs", "docs/README.md", True), ("docs/", "docs/README.md", True), ("/docs", "docs/x", True),
    ("*/tmp", "x/tmp/y", True), ("*/tmp", "x/y/tmp", False),
])
def test_patterns(pattern, path, hit):
    assert Matcher(read_patterns(pattern)).excluded(path) is hit


@pytest.mark.parametrize("patterns,path,hit", [
    (["*.go", "!fileutils.go"], "fileutils.go", False), (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False), (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
])
def test_exclusions_last_match_wins(patterns, path, hit):
    assert Matcher(patterns).excluded(path) is hit


def test_read_patterns_rules():
    text = "\ufeff# comment\n  spaced  \n\n/abs/path\n!  keep\n./a/../b\n #not a comment\n"
    assert read_patterns(text) == ["spaced", "abs/path", "!keep", "b", "#not a comment"]
    assert clean("a//b/./c/..") == "a/b"
    with pytest.raises(ValueError):
        Matcher(["!"])
    with pytest.raises(ValueError):
        Matcher(["["])


def test_context_filtering(tmp_path):
    root = tmp_path / "ctx"
    for p in ["a.txt", "b.log", "logs/x.log", "logs/keep.log", "node_modules/m/i.js", "src/app.py",
              "src/deep/test.tmp", ".git/HEAD"]:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_text(p)
    fs = ContextFS(root, read_patterns("*.log\nlogs\n!logs/keep.log\nnode_modules\n**/*.tmp\n.git\n"))
    walked = sorted(p for p, st in fs.walk("") if not os.path.isdir(fs.host_path(p)))
    assert walked == ["a.txt", "logs/keep.log", "src/app.py"]
    assert fs.lstat("b.log") is None and fs.lstat("node_modules") is None and fs.lstat("a.txt") is not None
    assert fs.listdir("") == ["a.txt", "logs", "src"]


@pytest.mark.parametrize("spec", ["go-w", "u=rw,g=r,o=r", "a+X", "u+rw,g+r,o-x,o+w", "u+x", "a-r", "g=u", "o=g",
                                  "u=rwx,go=rx", "a=", "ug+w,o-rwx", "a+x,u-w", "u-X", "o+X"])
def test_symbolic_chmod_is_chmods(tmp_path, spec):
    """--chmod's symbolic modes against chmod(1) itself (on files and directories of several modes;
    with a class named, as chmod(1) then ignores the umask, as BuildKit always does)."""
    import subprocess

    from jupybox.dockerfile.sources import Chmod

    for is_dir in (False, True):
        for mode in (0o644, 0o755, 0o600, 0o700, 0o640, 0o711, 0o000):
            p = tmp_path / f"{'d' if is_dir else 'f'}{mode:o}"
            p.mkdir() if is_dir else p.write_text("")
            os.chmod(p, mode)
            subprocess.run(["chmod", spec, str(p)], check=True)
            assert Chmod(spec).apply(mode, is_dir) == os.stat(p).st_mode & 0o7777, (spec, oct(mode), is_dir)
