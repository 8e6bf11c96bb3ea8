"""The notebooks as committed, read as a class would read them (on GitHub, in JupyterLab), without
running them: numbered titles and time in class, one set-up call and one clean-up call, exercises
with hidden solutions that check themselves, hidden checks, light outputs free of machine noise,
diagrams with alt text, references to notebooks that exist. Executing them is test_notebooks.py."""

from __future__ import annotations

import json
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

from tests.notebooks.notebook_run import NOTEBOOK_DIR, notebooks, read  # noqa: E402

NOTEBOOKS = notebooks()
TEACHING = [p for p in NOTEBOOKS if not p.name.startswith("00-")]
IMG = NOTEBOOK_DIR / "img"
MAX_COMMITTED_OUTPUT = 256 * 1024  # bytes: light text and a few images worth showing, no more
SVG = "{http://www.w3.org/2000/svg}"


def _ids(paths):
    return [p.stem for p in paths]


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _hidden(cell, what: str) -> bool:
    return bool(cell.metadata.get("jupyter", {}).get(f"{what}_hidden"))


def _output_text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"]))
        for mime, value in o.get("data", {}).items():
            if mime.startswith("text/"):
                parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def test_the_notebooks_are_numbered_in_order():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(len(NOTEBOOKS))), [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", TEACHING, ids=_ids(TEACHING))
def test_title_and_time_in_class(path: Path):
    nb = read(path)
    title = nb.cells[0].source.splitlines()[0]
    assert title.startswith(f"# {path.name[:2]} · "), title
    minutes = nb.metadata["jupybox"]["minutes"]
    assert f"*Time in class: about {minutes} minutes." in nb.cells[0].source


def test_the_whole_set_takes_a_day_of_class():
    minutes = [read(p).metadata.get("jupybox", {}).get("minutes", 15) for p in NOTEBOOKS]
    assert 6 * 60 <= sum(minutes) <= 7 * 60, sum(minutes)


@pytest.mark.parametrize("path", TEACHING, ids=_ids(TEACHING))
def test_one_setup_call_and_one_cleanup_call(path: Path):
    code = _code(read(path))
    setup, cleanup = code[0].source, code[-1].source
    assert "from jupybox.teaching import setup" in setup and len(re.findall(r"\bsetup\(", setup)) == 1
    assert len([line for line in setup.splitlines() if line.strip() and not line.startswith("#")]) <= 4, setup
    assert cleanup.splitlines()[-1] == "lesson.cleanup()", cleanup
    assert not any("tempfile.mkdtemp" in c.source or "JUPYBOX_ROOT\"] =" in c.source for c in code)


@pytest.mark.parametrize("path", TEACHING, ids=_ids(TEACHING))
def test_exercises_with_hidden_solutions_that_check_themselves(path: Path):
    nb = read(path)
    cells = nb.cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises"))
    questions = [i for i, c in enumerate(cells) if i >= start and c.cell_type == "markdown"
                 and re.search(r"^\*\*\d\. ", c.source, re.M)]
    assert 3 <= len(questions) <= 4, f"{path.name}: {len(questions)} exercises"
    for n, i in enumerate(questions, 1):
        assert f"**{n}. " in cells[i].source, f"exercise {n} is misnumbered"
        solution = cells[i + 1]
        assert solution.cell_type == "code" and "solution" in _tags(solution), f"exercise {n} has no solution cell"
        assert _hidden(solution, "source") and _hidden(solution, "outputs"), f"the solution of {n} is not collapsed"
        body = [line for line in solution.source.splitlines() if not line.startswith("# needs:")]
        assert body[0].startswith("# Solution"), f"the solution of {n} does not start with its answer"
        assert re.search(r"^\s*assert ", solution.source, re.M), f"the solution of {n} checks nothing"


@pytest.mark.parametrize("path", TEACHING, ids=_ids(TEACHING))
def test_checks_are_hidden_and_only_check(path: Path):
    checks = [c for c in _code(read(path)) if "check" in _tags(c)]
    assert checks, "no hidden checks: the text's claims are not verified"
    for c in checks:
        assert _hidden(c, "source"), c.source
        assert re.search(r"^\s*assert ", c.source, re.M), c.source
        assert not c.get("outputs"), f"a check cell prints: {c.source[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_with_light_outputs_of_a_full_run(path: Path):
    nb = read(path)
    code = _code(nb)
    assert all(c.get("execution_count") for c in code), "not executed: run `make notebooks`"
    errors = [(c.source[:40], o.get("ename")) for c in code for o in c.get("outputs", [])
              if o["output_type"] == "error" and "raises-exception" not in _tags(c)]
    assert not errors, f"{path.name} is committed with error outputs {errors}"
    assert "widgets" not in nb.metadata, f"{path.name} is committed with widget state"
    size = len(json.dumps([c.get("outputs", []) for c in code]))
    assert size <= MAX_COMMITTED_OUTPUT, f"{path.name} is committed with {size >> 10} KiB of outputs"


NOISE = [re.compile(p) for p in (r"/work/", r"/root/", r"\.venv/", r"\[IPKernelApp\]",
                                 r"WARNING \|", r"site-packages", r"\.pyenv")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_outputs_carry_no_machine_paths_or_hostname(path: Path):
    host = socket.gethostname()
    for cell in _code(read(path)):
        text = _output_text(cell)
        found = [p.pattern for p in NOISE if p.search(text)]
        assert not found, f"{path.name}: {found} in the output of {cell.source[:60]!r}"
        assert not re.search(rf"(?<!\S){re.escape(host)}(?!\S)", text), \
            f"{path.name}: this machine's hostname in the output of {cell.source[:60]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_output_images_carry_alt_text(path: Path):
    """Charts in the outputs say what they show (nbconvert writes the alt text from the output's
    metadata; without it, it warns "Alternative text is missing")."""
    for cell in _code(read(path)):
        for o in cell.get("outputs", []):
            for mime in o.get("data", {}):
                if mime.startswith("image/"):
                    alt = o.get("metadata", {}).get(mime, {}).get("alt", "")
                    assert len(alt.split()) >= 5, f"{path.name}: an image without alt text below {cell.source[:60]!r}"


def _images(markdown: str) -> list[tuple[str, str]]:
    return re.findall(r"!\[([^\]]*)\]\(([^)\s]+)\)", markdown)


def test_diagrams_are_svg_with_a_title_and_used_with_alt_text():
    used = {}
    for path in NOTEBOOKS:
        for alt, src in _images(_markdown(read(path))):
            assert len(alt.split()) >= 5, f"{path.name}: {src} has no real alt text: {alt!r}"
            assert (NOTEBOOK_DIR / src).is_file(), f"{path.name}: {src} does not exist"
            used.setdefault(src, []).append(path.name)
    svgs = sorted(IMG.glob("*.svg"))
    assert len(svgs) >= 3
    for svg in svgs:
        root = ET.parse(svg).getroot()
        assert root.tag == f"{SVG}svg"
        assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None, svg.name
        assert f"img/{svg.name}" in used, f"{svg.name} is used by no notebook"


def test_references_to_notebooks_name_existing_ones():
    numbers = {p.name[:2] for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        nb = read(path)
        text = _markdown(nb) + "\n".join(c.source for c in _code(nb))
        for ref in re.findall(r"\bnotebooks? (\d\d)\b", text) + re.findall(r"\bnotebooks \d\d,? (?:and|or) (\d\d)", text):
            assert ref in numbers, f"{path.name} refers to notebook {ref}"


def test_no_teaching_notebook_says_rootless_is_to_come():
    for path in NOTEBOOKS:
        text = json.dumps(read(path).cells)
        assert "to come" not in text, path.name
