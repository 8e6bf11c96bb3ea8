#!/usr/bin/env python3
"""`make demo`: execute notebooks/00-quickstart.ipynb with a real kernel, as a user would run it.

Prints each cell's text output in the terminal, saves the executed notebook (with its charts as
PNGs) to demo-output/00-quickstart.ipynb, and exits non-zero if a cell fails (the notebook's cells
assert what its text claims).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    src = REPO / "notebooks" / "00-quickstart.ipynb"
    out_dir = REPO / "demo-output"
    out_dir.mkdir(exist_ok=True)
    nb = nbformat.read(src, as_version=4)
    # a store of its own, removed at the end with everything it made on this machine (bridges,
    # nftables table, cgroups): the demo leaves nothing behind, and never touches another store
    work = tempfile.mkdtemp(prefix="jupybox-demo-")
    root = os.path.join(work, "store")
    os.environ["JUPYBOX_ROOT"] = root
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as e:
        failed = e
    finally:
        nbformat.write(nb, out_dir / src.name)
        import shutil

        import jupybox

        if os.path.exists(root):
            jupybox.reset(root)
        shutil.rmtree(work, ignore_errors=True)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "execution_count" not in cell:
            continue
        print(f"\n\033[1mIn [{cell.get('execution_count') or ' '}]:\033[0m " + cell.source.splitlines()[0] if cell.source else "")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                sys.stdout.write(output.get("text", ""))
            elif "data" in output:
                data = output["data"]
                if "image/png" in data:
                    print("[chart: image/png saved in the notebook]")
                if "text/plain" in data and "image/png" not in data:
                    print(data["text/plain"][:500])
            elif output.get("output_type") == "error":
                print(f"{output.get('ename')}: {output.get('evalue')}")
    print(f"\nexecuted notebook: {out_dir / src.name}")
    if failed is not None:
        print("demo: a cell failed", file=sys.stderr)
        return 1
    print("demo: the quickstart ran top to bottom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
