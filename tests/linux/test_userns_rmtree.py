"""jupybox.linux.userns.rmtree: the store's removals, which may race with one another."""

from __future__ import annotations

import os

from jupybox.linux import userns


def test_a_subtree_removed_meanwhile_is_no_error(tmp_path, monkeypatch):
    """A prune beside the service's own cleanup: an entry another remover took between the listing
    and the open is gone, not an error (shutil hands os.open to onerror: it was called with the
    path alone, a TypeError that failed the prune)."""
    top = tmp_path / "c"
    (top / "work" / "work").mkdir(parents=True)
    (top / "upper").mkdir()
    (top / "upper" / "f").write_text("x")
    real_open = os.open
    taken = tmp_path / "taken"

    def racing_open(path, flags, *args, **kw):
        if path == "work" and kw.get("dir_fd") is not None and not taken.exists():
            os.rename(top / "work", taken)  # the other remover wins the race
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", racing_open)
    userns.rmtree(top)
    assert not top.exists() and taken.exists()


def test_a_directory_without_permissions_is_removed(tmp_path):
    """overlayfs leaves work/work mode 000."""
    top = tmp_path / "c"
    (top / "work" / "work" / "x").mkdir(parents=True)
    os.chmod(top / "work" / "work", 0)
    userns.rmtree(top)
    assert not top.exists()
