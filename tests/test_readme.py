"""The README works as written: its commands and examples run and give what it says, its verb list
is the parser's, every path, notebook and link it names exists, and it describes machines by their
properties (a 2-vCPU VM, hybrid cgroups), never by when or by whom something was measured.

The runnable blocks are the ones after an HTML comment naming this file: the shell block runs line by
line (``# exit N`` is the exit code a line must give, else 0; lines starting with ``.`` run in the
script's own shell, the others each in a ``set -e`` subshell), the Python block line by line (``# VALUE``
after an expression is what it must give), the notebook cells in a real kernel through nbclient.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, REPO / "BENCHMARKS.md", REPO / "binder" / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
_TESTED = re.compile(r"<!--([^>]*tests/test_readme\.py[^>]*)-->\n")


def marked_blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(the marker's text, language, [code of each fenced block right after the marker])."""
    out = []
    for marker in _TESTED.finditer(text):
        pos, blocks, lang = marker.end(), [], None
        while (m := _FENCE.match(text, pos)) and (lang is None or m.group(1) == lang):
            lang = m.group(1)
            blocks.append(m.group(2))
            pos = m.end()
        out.append((marker.group(1), lang, blocks))
    return out


def blocks(lang: str, says: str) -> list[str]:
    """The fenced blocks after the one marker whose text has ``says``."""
    found = [b for text, lg, b in marked_blocks(README.read_text()) if lg == lang and says in text]
    assert len(found) == 1, f"one {lang} block marked '{says}' expected in the README, found {len(found)}"
    return found[0]


# -- what the README says -------------------------------------------------------------------------
def test_the_verb_list_is_the_parsers():
    from jupybox.cli.parser import verb_summary

    m = re.search(r"<!-- verbs:.*?-->\n```text\n(.*?)```", README.read_text(), re.S)
    assert m, "the README's verb list (after <!-- verbs: ... -->) is missing"
    expected = verb_summary()
    assert " ".join(m.group(1).split()) == expected, f"the README's verb list should be:\n{expected}"


def test_the_verb_list_check_sees_a_missing_verb():
    from jupybox.cli.parser import build, verb_summary

    parser = build()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    sub.add_parser("frobnicate")
    assert verb_summary(parser).endswith(" frobnicate")
    assert "image (ls|rm|prune|inspect)" in verb_summary(parser)  # sub-verbs, aliases once
    assert "kernel (install|list|remove)" in verb_summary(parser)  # (list/ls, remove/rm are aliases)


_SESSION_WORDS = re.compile(r"this machine|this session|(?:first|second|third) session|measured here|this VM"
                            r"|the development VM|on this host", re.I)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_machines_are_described_by_their_properties(doc):
    # the prose: a fenced block may quote what a program prints, which must stay word for word
    prose = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), doc.read_text())
    hits = [f"{doc.name}:{n}: {line.strip()}" for n, line in enumerate(prose.splitlines(), 1)
            if _SESSION_WORDS.search(line)]
    assert not hits, "\n".join(hits)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_and_anchors_resolve():
    text = README.read_text()
    anchors = {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (REPO / path).exists(), f"README links to {path}, which does not exist"
        elif anchor:
            assert anchor in anchors, f"README links to #{anchor}, which is no heading"


_PATH = re.compile(r"`((?:jupybox|tests|notebooks|benchmarks|binder|scripts|docs)/[\w./*-]*)`")
_NOTEBOOK = re.compile(r"`(\d\d-[\w-]+)`")


def test_the_paths_and_notebooks_it_names_exist():
    text = README.read_text()
    missing = [p for p in _PATH.findall(text) if not glob.glob(str(REPO / p.rstrip("/")))]
    missing += [f"notebooks/{nb}.ipynb" for nb in _NOTEBOOK.findall(text)
                if not (REPO / "notebooks" / f"{nb}.ipynb").exists()]
    assert not missing, missing


# -- what the README's examples do ----------------------------------------------------------------
def shell_script(lines: list[str], rc_file: str) -> tuple[str, list[tuple[int, str, int]]]:
    """A bash script running each command line, writing "N RC" per line to ``rc_file``; and
    [(N, line, expected exit code)]."""
    script = [f"exec 3>{rc_file}"]
    expected = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.search(r"#\s*exit (\d+)", line)
        expected.append((n, line, int(m.group(1)) if m else 0))
        if line.startswith(". "):
            script.append(f"{line}\necho {n} $? >&3")
        else:
            script.append(f"( set -e -o pipefail\n{line}\n)\necho {n} $? >&3")
    return "\n".join(script) + "\n", expected


def test_the_shell_runner_sees_a_failing_command_in_a_line(tmp_path):
    # a line whose first command fails fails, whatever comes after it; and "# exit N" is read
    script, expected = shell_script(["false; true", "exit 3   # exit 3", "# a comment", "true"], str(tmp_path / "rc"))
    subprocess.run(["bash", "-c", script], check=False)
    got = {int(n): int(rc) for n, rc in (ln.split() for ln in (tmp_path / "rc").read_text().splitlines())}
    assert got == {1: 1, 2: 3, 4: 0} and [e for _, _, e in expected] == [0, 3, 0]


@pytest.mark.root
def test_the_cli_block_runs_as_written(jupybox_root, registry, tmp_path):
    (code,) = blocks("sh", "line by line")
    code = code.replace("127.0.0.1:5000", registry.host)  # the README's registry: the test's, on loopback
    script, expected = shell_script(code.splitlines(), str(tmp_path / "rc"))
    env = dict(os.environ, TMPDIR=str(tmp_path), JUPYBOX_ROOT=str(jupybox_root))
    proc = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    got = {int(n): int(rc) for n, rc in (ln.split() for ln in (tmp_path / "rc").read_text().splitlines())}
    wrong = [f"line {n}: exit {got.get(n)} (expected {want}): {line}" for n, line, want in expected if got.get(n) != want]
    assert not wrong, "\n".join(wrong) + f"\n--- stdout:\n{proc.stdout[-3000:]}\n--- stderr:\n{proc.stderr[-3000:]}"
    assert "step 3" in proc.stdout  # logs -f followed the job to its end
    assert "Loaded image: mybox:1" in proc.stdout


def python_script(code: str) -> str:
    """The block as a script: an expression line with ``# VALUE`` (a Python literal) asserts it."""
    out = []
    for line in code.splitlines():
        expr, _, comment = line.partition("  #")
        try:
            value = ast.literal_eval(comment.strip()) if comment else None
            ast.parse(expr.strip(), mode="eval")
        except (ValueError, SyntaxError):
            out.append(line)
            continue
        out.append(f"_got = {expr.strip()}\nassert _got == {value!r}, ({expr.strip()!r}, _got)")
    return "\n".join(out) + "\nprint('README OK')\n"


def test_the_python_runner_checks_values():
    script = python_script("x = 1 + 1\nx     # 3\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0 and "AssertionError" in proc.stderr


@pytest.mark.root
def test_the_python_block_runs_as_written(jupybox_root, tmp_path):
    (code,) = blocks("python", "this block")
    proc = subprocess.run([sys.executable, "-c", python_script(code)], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, JUPYBOX_ROOT=str(jupybox_root)), timeout=300)
    assert proc.returncode == 0 and "README OK" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.root
def test_the_notebook_cells_run_as_written(jupybox_root, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    *run, last = blocks("python", "cells")
    expr, _, want = last.partition("#")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in run]
                                  + [nbformat.v4.new_code_cell(textwrap.dedent(expr).strip())])
    assert os.environ["JUPYBOX_ROOT"] == str(jupybox_root)  # the kernel inherits the test's store
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=240,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = nb.cells[-1].outputs[0]["data"]["text/plain"]
    assert ast.literal_eval(shown) == ast.literal_eval(want.strip())


@pytest.mark.root
def test_a_missing_image_is_refused_as_the_readme_says(jupybox_root):
    said = re.search(r"``(jupybox: No such image: .*?)``", README.read_text(), re.S).group(1)
    proc = subprocess.run([sys.executable, "-m", "jupybox", "run", "--rm", "busybox", "true"], capture_output=True,
                          text=True, env=dict(os.environ, JUPYBOX_ROOT=str(jupybox_root)), timeout=120)
    assert proc.returncode == 125 and proc.stderr.strip() == " ".join(said.split())


def verb_list_text(width: int = 100) -> str:
    """The parser's verb list as the README shows it: ``name (sub|verbs)`` never split over lines."""
    from jupybox.cli.parser import verb_summary

    lines = [""]
    for word in re.findall(r"\S+(?: \([^)]*\))?", verb_summary()):
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append("")
        lines[-1] = f"{lines[-1]} {word}".strip()
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python tests/test_readme.py: write the parser's verb list into the README
    text = README.read_text()
    new = re.sub(r"(<!-- verbs:.*?-->\n```text\n).*?(```)", lambda m: m.group(1) + verb_list_text() + m.group(2),
                 text, count=1, flags=re.S)
    README.write_text(new)
    print("README.md: verb list", "rewritten" if new != text else "unchanged")
