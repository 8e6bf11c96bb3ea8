"""A notebook executed with nbclient records the digest each %%container cell ran; lock pins it; a moved
tag makes --locked fail with the message; save --from-notebook bundles what the notebook needs."""

from __future__ import annotations

import pytest

from jupybox.testing import import_image

from .conftest import cli

pytestmark = [pytest.mark.root, pytest.mark.slow]
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def execute(path, cwd):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=True,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    nbformat.write(nb, path)
    return nb


def streams(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def failure(cell) -> str:
    """The cell's error: an error output, or IPython's UsageError line (shown on stderr)."""
    errs = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
    errs += [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
    return "\n".join(errs)


def test_digests_recorded_locked_and_bundled(env_root, busybox_tar, tmp_path, monkeypatch):
    from jupybox.image.store import ImageStore

    monkeypatch.setenv("JUPYBOX_ROOT", str(env_root))
    import_image(env_root, busybox_tar, "bb:1")
    store = ImageStore(env_root)
    bb = store.resolve("bb:1")
    path = tmp_path / "analysis.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext jupybox"),
                nbformat.v4.new_code_cell("%%container --no-chart bb:1 sh\nreadlink /bin/sh"),
                nbformat.v4.new_code_cell("%%container --no-chart --locked -m 64m bb:1 sh\necho locked")]
    nbformat.write(nb, path)

    nb = execute(path, tmp_path)
    rec = [o.metadata["jupybox"] for o in nb.cells[1].outputs if "jupybox" in o.get("metadata", {})]
    assert rec == [{"image": "bb:1", "digest": bb.manifest_digest, "id": bb.id, "options": {}}]
    assert "busybox" in streams(nb.cells[1])
    # --locked on a tag: not pinned yet
    assert "UsageError: --locked: the image bb:1 is not pinned to a digest" in failure(nb.cells[2])

    p = cli(env_root, "notebook", "lock", path)
    assert f"cell 2: bb:1 -> bb:1@{bb.manifest_digest}" in p.stdout
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[1].source == f"%%container --no-chart bb:1@{bb.manifest_digest} sh\nreadlink /bin/sh"
    assert nb.cells[2].source.startswith(f"%%container --no-chart --locked -m 64m bb:1@{bb.manifest_digest} sh")
    assert nb.cells[1].metadata["jupybox"]["digest"] == bb.manifest_digest
    listed = cli(env_root, "notebook", "images", path).stdout
    rows = listed.splitlines()[1:]
    assert len(rows) == 2 and all(bb.manifest_digest in r and bb.id[7:19] in r for r in rows)

    nb = execute(path, tmp_path)  # pinned and the tag unmoved: both run
    assert "busybox" in streams(nb.cells[1]) and streams(nb.cells[2]).strip() == "locked"

    cli(env_root, "tag", "debian-pip", "bb:1")  # the tag moves
    nb = execute(path, tmp_path)
    assert "busybox" in streams(nb.cells[1])  # not locked: the pinned digest runs, whatever the tag says
    now = store.resolve("debian-pip").manifest_digest
    assert failure(nb.cells[2]) == (f"Conflict: --locked: bb:1 now points to {now}, but this cell is locked to "
                                    f"{bb.manifest_digest}: re-tag it (jupybox tag bb@{bb.manifest_digest} "
                                    "bb:1) or lock the notebook again")
    assert not streams(nb.cells[2])

    # everything the notebook needs, in one archive, loaded elsewhere
    cli(env_root, "save", "--from-notebook", path, "-o", tmp_path / "env.tar")
    other = tmp_path / "elsewhere"
    try:
        cli(other, "load", "-i", tmp_path / "env.tar")
        listed = cli(other, "notebook", "images", path).stdout
        assert "missing" not in listed and bb.id[7:19] in listed
    finally:
        from jupybox.testing.leaks import stop_services

        stop_services(other)


def test_bad_notebook_is_one_line(env_root, tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": 3}')
    p = cli(env_root, "notebook", "images", path, check=False)
    assert p.returncode == 125 and p.stderr.startswith(f"jupybox: {path}: not a valid notebook")
    assert len(p.stderr.strip().splitlines()) == 1
    p = cli(env_root, "notebook", "lock", tmp_path / "nope.ipynb", check=False)
    assert p.returncode == 125 and "no such notebook" in p.stderr
