import os
import sys

from jupybox.image import ImageStore
from jupybox.image import host


def test_binds():
    binds = host.host_binds()
    dsts = [dst for _, dst in binds]
    assert "/usr" in dsts and "/etc" in dsts
    assert all(src == dst or os.path.realpath(dst) == src for src, dst in binds)
    for forbidden in ("/home", "/root", "/tmp", "/var", "/srv", "/mnt", "/"):
        assert forbidden not in dsts
    for dst in dsts:
        if dst.startswith(("/root/", "/home/")):  # only the Python prefix may come from there
            assert any(dst == os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)), dst
    prefix = os.path.realpath(sys.prefix)
    assert any(prefix == dst or prefix.startswith(dst + "/") for dst in dsts)
    for d in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(d):
            assert (d, os.readlink(d)) in host.host_symlinks() and d not in dsts
        elif os.path.isdir(d):
            assert d in dsts


def test_masks():
    masks = host.host_masks()
    if os.path.exists("/etc/shadow"):
        assert "/etc/shadow" in masks
    assert all(not m.endswith(".pub") for m in masks)
    assert "/etc/sudoers" not in masks and "/etc/passwd" not in masks


def test_image_and_path():
    img = host.host_image()
    assert img.is_host and img.refs == ["host:latest"] and img.cmd == ["/bin/sh"]
    path = img.env_dict["PATH"].split(":")
    assert path[0] == os.path.join(sys.prefix, "bin")
    assert path[-6:] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".split(":")
    assert img.id == host.host_image().id and img.id.startswith("sha256:")
    assert img.inspect()["RootFS"]["Type"] == "host" and img.history()


def test_host_root_plan(tmp_path):
    plan = host.host_root(store_root=tmp_path)
    assert "/tmp" in plan.fresh_dirs and "/var" in plan.fresh_dirs
    for m in plan.mkdirs:  # parents created empty, never the whole of /root or /home bound
        assert m not in [dst for _, dst in plan.binds]
    assert plan.hidden_dirs == []
    assert host.host_hidden_dirs("/opt/jupybox-store") == [os.path.realpath("/opt/jupybox-store")] \
        if os.path.isdir("/opt") else True


def test_store_knows_host(tmp_path):
    store = ImageStore(tmp_path)
    h = store.resolve("host")
    assert h.is_host and store.list()[-1].id == h.id
    assert store.resolve(h.short_id).is_host and store.resolve(h.id).is_host
    assert store.layer_dirs(h) == []


STANDARD = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_path_with_debians_own_python():
    """A venv over /usr's Python: the standard order after the venv's bin (/usr/bin must not
    jump ahead of /usr/local/bin)."""
    assert host.host_path_env("/work/app/.venv", "/usr", "/work/app/.venv/bin/python3") == \
        "/work/app/.venv/bin:" + STANDARD
    assert host.host_path_env("/usr", "/usr", "/usr/bin/python3") == STANDARD  # no venv at all
    # a Python built into /usr/local (docker's python images): its bin is a standard directory too
    assert host.host_path_env("/app/.venv", "/usr/local", "/app/.venv/bin/python") == "/app/.venv/bin:" + STANDARD


def test_path_with_a_pyenv_like_python():
    base = "/root/.pyenv/versions/3.11.7"
    assert host.host_path_env("/work/app/.venv", base, "/work/app/.venv/bin/python") == \
        f"/work/app/.venv/bin:{base}/bin:" + STANDARD
    assert host.host_path_env(base, base, f"{base}/bin/python3.11") == f"{base}/bin:" + STANDARD
    # an interpreter outside its prefix's bin (a symlinked launcher) is reachable too
    assert host.host_path_env(base, base, "/opt/py/bin/python3") == f"{base}/bin:/opt/py/bin:" + STANDARD
