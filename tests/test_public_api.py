"""jupybox's package root: only re-exports, every one of them real, and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import jupybox


def test_every_public_name_resolves():
    for name in jupybox.__all__:
        assert getattr(jupybox, name) is not None, name


def test_importing_jupybox_and_its_cli_stays_light():
    # `jupybox run` starts with these imports: no notebook, plotting, registry or layer code
    code = ("import sys, jupybox, jupybox.cli, jupybox.runtime.engine; "
            "print(' '.join(sorted(m for m in ('IPython', 'matplotlib', 'ipywidgets', 'tarfile', "
            "'jupybox.registry', 'jupybox.image.layer', 'jupybox.jupyter.magics') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_the_api_functions_stay_callable_once_the_engine_is_imported(tmp_path, busybox_tar):
    """``jupybox.image`` is a function of the API and the name of a subpackage: importing the
    subpackage (every run does) must not turn the function into a module nobody can call."""
    import jupybox
    import jupybox.image.store  # noqa: F401 - what a run imports
    import jupybox.runtime.engine  # noqa: F401
    from jupybox.testing import import_image

    import_image(tmp_path / "root", busybox_tar, "bb:1")
    for name in jupybox.__all__:
        if name[0].islower() and name not in ("load_ipython_extension", "unload_ipython_extension"):
            assert callable(getattr(jupybox, name)), name
    assert jupybox.image("bb:1", root=tmp_path / "root").id.startswith("sha256:")


def test_the_spec_of_a_plain_run_imports_no_seccomp_profile_checker():
    """The CLI's `run` makes its spec before it talks to the service: a `--security-opt seccomp=FILE`
    checker (a JSON schema compiler, hashlib, ctypes: ~15 ms) is loaded only for such a profile."""
    code = ("import sys; from jupybox.runtime.options import make_spec; "
            "make_spec('busybox', ['true'], memory='64m', network='none'); "
            "print(' '.join(sorted(m for m in ('jupybox.linux.seccomp_docker', 'fastjsonschema', 'ctypes', 'hashlib') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
