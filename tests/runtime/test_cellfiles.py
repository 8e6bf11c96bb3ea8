"""A notebook cell's files live under the store, owned by the container that runs them: made
private, removed with the container (rm, --rm, prune), and collected when their maker died before
any container named them. A label is user input: it never names a path outside cells/."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import jupybox
from jupybox.paths import Layout
from jupybox.runtime import cellfiles
from jupybox.testing import import_image

pytestmark = [pytest.mark.root]


@pytest.fixture
def store(jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, "bb:1")
    return jupybox_root


def _cell(store, text="print('hi')\n"):
    d = cellfiles.make(Layout(store))
    (d / "cell.py").write_text(text)
    return d


def _run(store, d, **kw):
    return jupybox.run("bb:1", ["cat", "/run/jupybox-cell/cell.py"], root=store, network="none",
                       volumes=[f"{d}:/run/jupybox-cell:ro"], labels={cellfiles.LABEL: d.name}, **kw)


def test_a_cell_directory_is_private_and_names_its_maker(store):
    d = _cell(store)
    assert d.parent == Layout(store).root / "cells"
    assert os.stat(d).st_mode & 0o777 == 0o700
    assert (d / "owner").read_text() == str(os.getpid())


def test_it_goes_with_its_container(store):
    d = _cell(store)
    c = _run(store, d)
    assert c.wait() == 0 and c.logs() == "print('hi')\n"
    assert d.exists()  # the container is still there: so are its files
    c.remove()
    assert not d.exists()
    d = _cell(store)
    assert _run(store, d, remove=True).wait() == 0
    assert _gone(d)  # with the --rm container, at its cleanup (just after the exit)


def _gone(path, tries=200) -> bool:
    import time

    for _ in range(tries):
        if not path.exists():
            return True
        time.sleep(0.05)
    return False


def test_prune_collects_the_orphans_only(store):
    dead = _cell(store)
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    alive = _cell(store)  # ours: a container is being made for it
    named = _cell(store)
    c = _run(store, named)
    assert c.wait() == 0
    (named / "owner").write_text(p.stdout.strip())  # its maker gone too, but its container names it
    (dead / "owner").write_text(p.stdout.strip())  # its maker is gone (a kernel killed with -9)
    removed = jupybox.engine(store).collect_garbage()
    assert removed["cells"] == 1
    assert not dead.exists() and alive.exists() and named.exists()
    c.remove()
    assert not named.exists()


def test_a_label_never_names_a_path(store, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    cells = Layout(store).root / "cells"
    cells.mkdir(exist_ok=True)
    for label in [str(victim), "../../" + victim.name, "..", ""]:
        c = jupybox.run("bb:1", ["true"], root=store, network="none", labels={cellfiles.LABEL: label})
        assert c.wait() == 0
        c.remove()
    assert (victim / "keep").exists() and cells.exists()
