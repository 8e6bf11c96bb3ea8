"""``jupybox build --binder`` for real: a Debian base, a package index served on loopback, the image run,
rebuilt after a one-line change with pip's cache, locked, rebuilt from the lock, and used as a kernel."""

from __future__ import annotations

import hashlib

import pytest

from jupybox.testing.pipindex import PackageIndex

from .conftest import cli, image_files, kernel, wheels

pytestmark = [pytest.mark.root, pytest.mark.slow]


def make_repo(tmp_path, requirements: str, **more):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "requirements.txt").write_text(requirements)
    for name, text in more.items():
        (repo / name).write_text(text)
    return repo


def binder_build(root, repo, index, *extra, check=True):
    return cli(root, "build", "--binder", "--base", "debian-pip", "--index-url", index.url, "--trusted-host",
               "127.0.0.1", "--progress", "plain", *extra, repo, check=check)


def test_build_run_and_rebuild_with_the_pip_cache(env_root, index, tmp_path):
    repo = make_repo(tmp_path, "tabulate==0.9.0\n", **{
        "runtime.txt": "python-3.11\n",
        "postBuild": "#!/bin/sh\nset -e\npython3 -c 'import tabulate' && echo built > postbuild.out\n",
        "start": "#!/bin/sh\nexport FROM_START=yes\nexec \"$@\"\n"})
    binder_build(env_root, repo, index, "-t", "binder-demo")
    first = dict(index.downloads)
    assert "tabulate-0.9.0-py3-none-any.whl" in first and any(n.startswith("ipykernel-") for n in first)
    out = cli(env_root, "run", "--rm", "binder-demo", "sh", "-c",
              'python3 -c "import tabulate, ipykernel; print(tabulate.__version__)"; cat postbuild.out; '
              'echo "start:$FROM_START"; pwd').stdout.split()
    assert out == ["0.9.0", "built", "start:yes", "/srv/repo"]

    # one more line in requirements.txt: the kernel's layer is cached, the pip step runs again and
    # pip takes every file it had from its cache: only the new package is downloaded
    (repo / "requirements.txt").write_text("tabulate==0.9.0\nsix==1.16.0\n")
    p = binder_build(env_root, repo, index, "-t", "binder-demo")
    assert "CACHED" in p.stdout or "Using cache" in p.stdout or "cached" in p.stdout.lower(), p.stdout
    again = {n: c - first.get(n, 0) for n, c in index.downloads.items() if c - first.get(n, 0)}
    assert again == {"six-1.16.0-py2.py3-none-any.whl": 1}, again
    assert max(index.downloads.values()) == 1  # nothing was downloaded twice
    assert cli(env_root, "run", "--rm", "binder-demo", "python3", "-c",
               "import six, tabulate; print(six.__version__)").stdout.strip() == "1.16.0"


def test_lock_pins_versions_and_hashes_and_rebuilds_the_same_content(env_root, index, tmp_path):
    repo = make_repo(tmp_path, "six\n")
    lock = tmp_path / "env.lock"
    binder_build(env_root, repo, index, "-t", "locked:1", "--lock", lock)
    text = lock.read_text()
    served = {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in index.files().items()}
    assert "six==1.16.0 \\\n    --hash=sha256:" + served["six-1.16.0-py2.py3-none-any.whl"] in text
    assert "# jupybox lock: base debian-pip:latest@sha256:" in text.splitlines()[0]
    lines = [ln for ln in text.splitlines() if "==" in ln]
    assert len(lines) == text.count("--hash=sha256:") > 20  # ipykernel and its dependencies too

    # a newer six appears on the index: an unlocked build takes it, a locked one does not
    with PackageIndex(wheels("env-index"), wheels("env-index-newer")) as newer:
        binder_build(env_root, repo, newer, "-t", "unlocked:1", "--no-cache")
        binder_build(env_root, repo, newer, "-t", "locked:2", "--lock", lock, "--no-cache")
    version = "import six; print(six.__version__)"
    assert cli(env_root, "run", "--rm", "unlocked:1", "python3", "-c", version).stdout.strip() == "1.17.0"
    assert cli(env_root, "run", "--rm", "locked:2", "python3", "-c", version).stdout.strip() == "1.16.0"
    assert lock.read_text() == text  # used, not rewritten

    # a lock that no longer matches its inputs or its base is refused, in one line, building nothing
    (repo / "requirements.txt").write_text("six\ntabulate\n")
    p = binder_build(env_root, repo, index, "-t", "locked:4", "--lock", lock, check=False)
    assert p.returncode == 125 and "env.lock:2: the requirements changed since this lock was made" in p.stderr
    (repo / "requirements.txt").write_text("six\n")
    cli(env_root, "tag", "debian-pip:latest", "debian-pip:orig")
    cli(env_root, "tag", "locked:1", "debian-pip:latest")  # the base's tag moves
    try:
        p = binder_build(env_root, repo, index, "-t", "locked:4", "--lock", lock, check=False)
        assert p.returncode == 125 and "env.lock:1: the lock was made on debian-pip:latest@sha256:" in p.stderr
        assert cli(env_root, "images", "-q", "locked:4").stdout.strip() == ""
        # the digest the lock names still builds, whatever the tag says now; with no cache at all,
        # it is the second build from the lock (the first: locked:2, from the tag, on the newer index)
        base = text.splitlines()[0].split()[-1]
        binder_build(env_root, repo, index, "-t", "locked:5", "--lock", lock, "--base", base, "--no-cache")
        assert cli(env_root, "run", "--rm", "locked:5", "python3", "-c", version).stdout.strip() == "1.16.0"
    finally:
        cli(env_root, "tag", "debian-pip:orig", "debian-pip:latest")
    # two builds from the lock, no cache at all: the same files, byte for byte (.pyc included)
    site = "usr/local/lib/python3.11/dist-packages"
    a, b = image_files(env_root, "locked:2", site), image_files(env_root, "locked:5", site)
    assert a == b and any(p.endswith(".pyc") for p in a) and any("/six.py" in p for p in a)


def test_runtime_the_base_lacks_is_refused_before_building(env_root, index, tmp_path):
    repo = make_repo(tmp_path, "six==1.16.0\n", **{"runtime.txt": "python-3.12\n"})
    p = binder_build(env_root, repo, index, "-t", "nope", check=False)
    assert p.returncode == 125
    assert p.stderr.strip() == ("jupybox: runtime.txt:1: python-3.12 is not in the base image debian-pip (it has "
                                "python 3.11): use --base with an image that has python 3.12")
    assert cli(env_root, "images", "-q", "nope").stdout.strip() == ""


def test_a_failing_postbuild_leaves_no_image_and_no_container(env_root, index, tmp_path):
    repo = make_repo(tmp_path, "six==1.16.0\n", postBuild="#!/bin/sh\necho failing on purpose; exit 7\n")
    p = binder_build(env_root, repo, index, "-t", "broken", check=False)
    assert p.returncode == 1 and "RUN chmod +x postBuild && ./postBuild: the command returned a non-zero code: 7" \
        in p.stderr
    assert cli(env_root, "images", "-q", "broken").stdout.strip() == ""
    assert cli(env_root, "ps", "-aq").stdout.strip() == ""


def test_kernel_install_on_a_binder_image(env_root, index, tmp_path, jpath):
    pytest.importorskip("jupyter_client")
    repo = make_repo(tmp_path, "tabulate==0.9.0\n")
    binder_build(env_root, repo, index, "-t", "binder-kernel")
    cli(env_root, "kernel", "install", "--name", "binder-kernel", "--image", "binder-kernel", "--prefix", jpath)
    with kernel("binder-kernel", cwd=tmp_path) as run:
        text, reply = run("import tabulate, sys, os; print(tabulate.__version__, sys.prefix, "
                          "os.environ.get('JUPYBOX_IN_CONTAINER'))")
        assert reply["status"] == "ok", text
        assert text.split() == ["0.9.0", "/usr", "1"]
