"""Executing the notebooks of notebooks/, the same way for the tests and for `make notebooks`.

    python -m tests.notebooks.notebook_run --write [NOTEBOOK...]     # what `make notebooks` runs
    python -m tests.notebooks.notebook_run --check [NOTEBOOK...]     # fresh outputs == committed?

executes each notebook (all of them by default) with nbclient in a fresh sandbox ($TMPDIR and
$JUPYBOX_ROOT in a directory of its own, the kernel's cwd notebooks/ as in Jupyter) and, with
``--write``, stores it back with its outputs: the committed outputs are those of a run as root
with the current code, which ``test_notebook`` checks (tests/notebooks/notebook_outputs.py says
what may differ between two runs). A notebook that fails is not written; the exit status says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

from tests.notebooks.notebook_outputs import differences

REPO = Path(__file__).resolve().parent.parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
CELL_TIMEOUT = 180  # seconds per cell: generous; a whole notebook takes seconds


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def read(path: Path):
    return nbformat.read(path, as_version=4)


def sandbox(base: Path) -> tuple[Path, dict]:
    """A directory for everything the kernel makes: its $TMPDIR and a default $JUPYBOX_ROOT (for
    notebooks that do not make their own). The busybox tarball cache stays shared, on purpose."""
    box = base / "nb"
    (box / "tmp").mkdir(parents=True)
    env = {"TMPDIR": str(box / "tmp"), "JUPYBOX_ROOT": str(box / "store")}
    return box, env


def execute(nb, *, kernel_name: str = "python3", env: dict, cwd: Path = NOTEBOOK_DIR,
            timeout: int = CELL_TIMEOUT) -> None:
    """Run ``nb`` in place with nbclient; the kernel gets ``env`` on top of this process's."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel manager hands this process's environment to the kernel
    try:
        client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=timeout, record_timing=False,
                                         store_widget_state=False, resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def for_commit(nb):
    """What is committed of an executed notebook: its outputs, no timing or widget state, and no
    interpreter version (a fact of the machine that ran it)."""
    nb.metadata.pop("widgets", None)
    nb.metadata.get("language_info", {}).pop("version", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def run_one(path: Path, write: bool, check: bool = False, keep_failed: Path | None = None) -> float:
    base = Path(tempfile.mkdtemp(prefix="jupybox-notebooks-"))
    try:
        _, env = sandbox(base)
        committed = read(path)
        nb = read(path)
        t0 = time.monotonic()
        try:
            execute(nb, env=env)
        except Exception:
            if keep_failed is not None:  # with the outputs up to the failing cell
                keep_failed.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, keep_failed / path.name)
            raise
        elapsed = time.monotonic() - t0
        if check:
            diffs = differences(committed, nb)
            if diffs:
                raise AssertionError("the committed outputs differ from a fresh run:\n" + "\n".join(diffs))
        if write:
            nbformat.write(for_commit(nb), path)
        return elapsed
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _tail(e: BaseException, lines: int = 25) -> str:
    """The end of an error: for a cell, its source and traceback (ANSI colours removed)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e).strip() or type(e).__name__)
    return "\n".join(text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="store each executed notebook back, with its outputs")
    ap.add_argument("--check", action="store_true", help="compare the fresh outputs with the committed ones")
    ap.add_argument("--keep-failed", type=Path, metavar="DIR", help="write a failed notebook there, as far as it ran")
    ap.add_argument("paths", nargs="*", type=Path)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the committed outputs are those of a run as root: run this as root", file=sys.stderr)
        return 2
    failed = []
    total = 0.0
    for path in args.paths or notebooks():
        try:
            seconds = run_one(path.resolve(), args.write, args.check, args.keep_failed)
        except Exception as e:  # noqa: BLE001 - reported, then the next notebook
            failed.append(path.name)
            print(f"{path.name}: FAILED:\n{_tail(e)}", file=sys.stderr)
            continue
        total += seconds
        print(f"{path.name}: {seconds:.1f} s{' (written)' if args.write else ''}", flush=True)
    print(f"total: {total:.1f} s")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
