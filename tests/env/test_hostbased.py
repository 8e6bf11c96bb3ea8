"""FROM host, commit, materialize: the host's environment plus a layer, and images made portable."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import sys

import pytest

from .conftest import cli, wheels

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_from_host_pip_install_adds_a_module(env_root, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(wheels("env-index") / "tabulate-0.9.0-py3-none-any.whl", ctx)
    (ctx / "Dockerfile").write_text(
        "FROM host\nCOPY tabulate-0.9.0-py3-none-any.whl /tmp/\n"
        "RUN python3 -m pip install --no-index --no-deps /tmp/tabulate-0.9.0-py3-none-any.whl && rm /tmp/*.whl\n")
    cli(env_root, "build", "-t", "host-plus", ctx)
    out = cli(env_root, "run", "--rm", "host-plus", "python3", "-c",
              "import sys, tabulate, os; print(tabulate.__version__, sys.prefix, os.path.exists('/etc/shadow'))")
    assert out.stdout.split() == ["0.9.0", sys.prefix, "False"]
    assert importlib.util.find_spec("tabulate") is None  # the machine's environment was not touched
    inspect = cli(env_root, "image", "inspect", "host-plus").stdout
    assert '"io.jupybox.host-view"' in inspect
    # a second build of the same machine state is cached (same view)
    p = cli(env_root, "build", "--progress", "plain", "-t", "host-plus", ctx)
    assert p.stdout.count("CACHED") >= 2, p.stdout
    # such an image cannot leave the machine as it is
    p = cli(env_root, "save", "-o", tmp_path / "x.tar", "host-plus", check=False)
    assert p.returncode == 1 and "host-plus:latest is built FROM host" in p.stderr and "--materialize" in p.stderr
    assert not (tmp_path / "x.tar").exists()
    cli(env_root, "tag", "host-plus", "127.0.0.1:1/host-plus")
    p = cli(env_root, "push", "127.0.0.1:1/host-plus", check=False)
    assert p.returncode == 1 and "is built FROM host" in p.stderr and "push --materialize" in p.stderr  # no network


def test_commit_a_changed_container_and_run_it(env_root):
    cli(env_root, "run", "-d", "--name", "to-commit", "debian-pip", "sh", "-c",
        "echo data > /data.txt; rm /etc/issue; mkdir -p /opt/x && echo y > /opt/x/y; touch /ready; sleep 600")
    try:
        for _ in range(200):
            if cli(env_root, "exec", "to-commit", "test", "-e", "/ready", check=False).returncode == 0:
                break
        img = cli(env_root, "commit", "-m", "with its data", "-a", "Jane <jane@example.org>",
                  "-c", 'CMD ["cat", "/data.txt"]', "-c", "ENV STAGE=committed", "to-commit", "committed:1").stdout
        assert img.strip().startswith("sha256:")
        assert cli(env_root, "inspect", "-f", "{{.State.Status}}", "to-commit").stdout.strip() == "running"
    finally:
        cli(env_root, "rm", "-f", "to-commit")
    assert cli(env_root, "run", "--rm", "committed:1").stdout == "data\n"
    out = cli(env_root, "run", "--rm", "committed:1", "sh", "-c",
              "test -e /etc/issue || echo gone; cat /opt/x/y; echo $STAGE; test -s /etc/hosts && echo hosts").stdout
    assert out.split() == ["gone", "y", "committed", "hosts"]
    hist = cli(env_root, "history", "--no-trunc", "committed:1").stdout.splitlines()[1]
    assert "with its data" in hist and "echo data > /data.txt" in hist
    assert '"Jane <jane@example.org>"' in cli(env_root, "image", "inspect", "committed:1").stdout
    p = cli(env_root, "commit", "no-such-container", "x:1", check=False)
    assert p.returncode != 0 and "no-such-container" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.fixture
def small_host(monkeypatch, tmp_path):
    """The host image narrowed to /etc and a static busybox tree (a real view, a few MB): the whole
    machine is ~17 GB on the VM the suite runs on."""
    from jupybox.image import host
    from jupybox.testing import busybox_rootfs

    if not shutil.which("busybox"):
        pytest.skip("busybox-static is not installed")
    bb = busybox_rootfs(tmp_path / "bbtree")
    monkeypatch.setattr(host, "SYSTEM_DIRS", ("/etc", str(bb)))
    monkeypatch.setattr(host, "TOP_LEVEL_DIRS", ())
    monkeypatch.setattr(host, "python_prefixes", lambda: [])
    return bb


def test_commit_host_and_materialize_make_portable_images(env_root, small_host, tmp_path):
    from jupybox.api import engine
    from jupybox.dockerfile import build
    from jupybox.env.commit import commit_host
    from jupybox.env.hostbased import materialize

    store = engine(str(env_root)).store
    err = io.StringIO()
    img = commit_host(store, "my-machine:1", message="snapshot", out=err)
    assert "the host's environment is about" in err.getvalue() and "100%" in err.getvalue()
    busybox = f"{small_host}/bin/busybox"
    out = cli(env_root, "run", "--rm", "my-machine:1", busybox, "sh", "-c",
              "cat /etc/hostname >/dev/null && test ! -e /etc/shadow && echo ok").stdout
    assert out.strip() == "ok"
    assert "io.jupybox.host-view" not in str(img.config)

    # FROM host, a RUN, then --materialize: the view becomes the first layer, the tag moves to it
    built = build(None, f'FROM host\nRUN ["{busybox}", "sh", "-c", "echo added > /added"]\n', tags=["small-plus:1"],
                  root=str(env_root), network="none")
    assert "io.jupybox.host-view" in str(built.config) and len(built.layers) == 1
    err = io.StringIO()
    m = materialize(store, "small-plus:1", out=err)
    assert len(m.layers) == 2 and m.id != built.id and "small-plus:latest" not in m.names
    assert store.resolve("small-plus:1").id == m.id
    cli(env_root, "save", "-o", tmp_path / "env.tar", "small-plus:1", "my-machine:1")
    other = tmp_path / "other-store"
    cli(other, "load", "-i", tmp_path / "env.tar")
    try:
        out = cli(other, "run", "--rm", "small-plus:1", busybox, "cat", "/added").stdout
        assert out == "added\n"
    finally:
        from jupybox.testing.leaks import stop_services

        stop_services(other)


def test_a_host_view_no_image_uses_goes_with_prune(env_root, small_host):
    """Each host view holds the hard links of a whole environment: once no image is built on it,
    `jupybox prune` (garbage collection) removes it; one in use stays."""
    from jupybox.dockerfile import build
    from jupybox.image import hostview
    from jupybox.paths import Layout

    busybox = f"{small_host}/bin/busybox"
    views = hostview.views_dir(Layout(str(env_root)))
    cli(env_root, "prune", "-f")  # (the views of earlier tests' images that are gone)
    before = set(os.listdir(views)) if views.exists() else set()
    for tag in ("a:1", "b:1"):
        build(None, f'FROM host\nRUN ["{busybox}", "sh", "-c", "echo {tag} > /tag"]\n', tags=[tag],
              root=str(env_root), network="none")
    (key,) = set(os.listdir(views)) - before  # one view of the host, shared by both images
    cli(env_root, "rmi", "a:1")
    cli(env_root, "prune", "-f")
    assert set(os.listdir(views)) - before == {key}  # b:1 still sits on it
    cli(env_root, "rmi", "b:1")
    cli(env_root, "prune", "-f")
    assert set(os.listdir(views)) == before - {key}  # (an earlier image's view may be this one)
