"""jupybox.testing.kernels: where Debian 11's kernel is fetched from and how the cache is read (the
fetch itself runs in `make test-fixtures`; the v2 guest boots what it made)."""

from __future__ import annotations

import json

from jupybox.testing import kernels


def test_the_hosts_own_mirrors_come_from_both_source_formats(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# a comment\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb-src http://src.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n")
    (tmp_path / "sources.list.d" / "ignored.txt").write_text("deb http://nowhere.example/debian x main\n")
    monkeypatch.setattr(kernels, "SOURCES", (str(tmp_path / "sources.list"), str(tmp_path / "sources.list.d")))
    assert kernels.host_mirrors() == ["http://mirror.example/debian", "http://deb.debian.org/debian"]


def test_a_half_made_kernel_directory_is_not_a_kernel(tmp_path):
    assert kernels.cached_kernel(tmp_path) is None
    base = kernels.kernel_dir(tmp_path)
    (base / "boot").mkdir(parents=True)
    (base / "kernel.json").write_text(json.dumps({"version": "5.10.0-32-amd64"}))
    (base / "boot" / "vmlinuz-5.10.0-32-amd64").write_bytes(b"kernel")
    assert kernels.cached_kernel(tmp_path) is None  # no modules.dep yet (depmod had not run)
    modules = base / "lib" / "modules" / "5.10.0-32-amd64"
    modules.mkdir(parents=True)
    (modules / "modules.dep").write_text("")
    version, image, mods = kernels.cached_kernel(tmp_path)
    assert (version, image.name, mods) == ("5.10.0-32-amd64", "vmlinuz-5.10.0-32-amd64", modules)
