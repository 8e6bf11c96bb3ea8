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
            "'jupybox.registry', 'jupybox.image.layer', 'jupybox.jupyter.magics', 'pyroute2') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
