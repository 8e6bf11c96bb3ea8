"""notebooks/08-dockerfile.ipynb runs top to bottom in a real kernel (the magics, the API, the daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "08-dockerfile.ipynb"


def test_dockerfile_notebook(jupybox_root, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    assert "hello from" in text and "as app: 1.0" in text  # the image built by %%dockerfile runs
    assert "CACHED" in text and "compiled tool" in text
    assert "BuildError: Dockerfile:2: RUN echo about to fail; exit 3" in text
    from jupybox.runtime.engine import Engine

    assert Engine(jupybox_root).records.all() == []
