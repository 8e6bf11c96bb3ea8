"""Fixtures of the notebook tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def module_root(tmp_path_factory, request):
    """One store (and so one service) for the test module, as $JUPYBOX_ROOT; at the end its
    service is stopped and whatever ran or was mounted under it is gone."""
    from jupybox.testing.leaks import cleanup_mounts_under, kill_processes_under, stop_services

    root = tmp_path_factory.mktemp(f"jbx-{request.module.__name__.rsplit('.', 1)[-1]}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYBOX_ROOT", str(root))
        yield root
    from jupybox import api

    client = api._clients.pop(api._key(str(root)), None)  # noqa: SLF001 - this process's connection
    if client is not None:
        client.close()
    stop_services(root)
    kill_processes_under(root)
    cleanup_mounts_under(root)
