"""``%pip install`` in a kernel that runs in a container (the host image's environment is read-only
there), for the kernel's life, and across restarts with ``--persist-packages``."""

from __future__ import annotations

import shutil

import pytest

from .conftest import cli, kernel, wheels

pytestmark = [pytest.mark.root, pytest.mark.slow]
pytest.importorskip("jupyter_client")

MiB = 1024 * 1024


def test_pip_install_in_a_boxed_kernel_and_its_usage(env_root, tmp_path, jpath):
    whl = shutil.copy(wheels("env-index") / "tabulate-0.9.0-py3-none-any.whl", tmp_path)
    cli(env_root, "kernel", "install", "--name", "pip-kernel", "-m", "300m", "--prefix", jpath)
    with kernel("pip-kernel", cwd=tmp_path) as run:
        text, reply = run("import importlib.util; print(importlib.util.find_spec('tabulate'))")
        assert text.strip() == "None"  # not on the machine, not in the image
        text, reply = run(f"%pip install --no-index --no-deps {whl}")
        assert reply["status"] == "ok" and "Successfully installed tabulate-0.9.0" in text, text
        text, reply = run("import tabulate, os; print(tabulate.__version__, tabulate.__file__)")
        assert reply["status"] == "ok", text
        version, where = text.split()
        assert version == "0.9.0" and where.startswith("/var/lib/jupybox-packages/lib/python3.11/site-packages/")
        usage = run.usage()  # the kernel's usage still comes from its container's cgroup
        assert usage["container"]["memory_limit"] == 300 * MiB
        assert usage["container"]["id"] == run.km.provisioner.container_id
        cid = run.km.provisioner.container_id
        run.restart()
        # a restart is a fresh container: what %pip installed went with the old one
        text, reply = run("import importlib.util; print(importlib.util.find_spec('tabulate'))")
        assert text.strip() == "None" and run.km.provisioner.container_id != cid
    import importlib.util

    assert importlib.util.find_spec("tabulate") is None  # the machine's environment was not touched


def test_persist_packages_keeps_them_across_restarts(env_root, tmp_path, jpath):
    whl = shutil.copy(wheels("env-index") / "tabulate-0.9.0-py3-none-any.whl", tmp_path)
    six = shutil.copy(wheels("env-index") / "six-1.16.0-py2.py3-none-any.whl", tmp_path)
    cli(env_root, "kernel", "install", "--name", "pip-persist", "--persist-packages", "--prefix", jpath)
    try:
        with kernel("pip-persist", cwd=tmp_path) as run:
            text, reply = run(f"%pip install --no-index --no-deps {whl}")
            assert "Successfully installed tabulate-0.9.0" in text, text
            # another version of a package the image has: installed over it with -I (the image's
            # copy is read-only and stays; the prefix comes first on sys.path)
            text, reply = run(f"%pip install --no-index --no-deps --ignore-installed {six}")
            assert "Successfully installed six-1.16.0" in text, text
            run.restart()
            text, reply = run("import six, tabulate; print(six.__version__, tabulate.__version__)")
            assert reply["status"] == "ok" and text.split() == ["1.16.0", "0.9.0"], text
        assert "jupybox-packages-pip-persist" in cli(env_root, "volume", "ls", "-q").stdout.split()
    finally:
        cli(env_root, "volume", "rm", "jupybox-packages-pip-persist", check=False)
