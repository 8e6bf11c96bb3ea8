"""Container records on disk: names, staged directories, and state files replaced without new inodes."""

from __future__ import annotations

import json
import os

import pytest

from jupybox.errors import Conflict
from jupybox.paths import Layout
from jupybox.runtime.records import Records
from jupybox.runtime.state import State, stage_json, write_json_atomic


def tmp_files(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_write_without_a_staged_temp_file_leaves_none(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert tmp_files(tmp_path) == []


def test_staged_temp_file_is_swapped_in_and_kept(tmp_path):
    path = tmp_path / "state.json"
    stage_json(path, os.getpid(), {"v": 0})
    (tmp,) = tmp_files(tmp_path)
    inodes = {os.stat(path).st_ino, os.stat(tmp_path / tmp).st_ino}
    for v in (1, 2, 3):
        write_json_atomic(path, {"v": v})
        assert json.loads(path.read_text()) == {"v": v}
        # the same two inodes take turns: nothing made, nothing freed
        assert {os.stat(path).st_ino, os.stat(tmp_path / tmp).st_ino} == inodes
    assert json.loads((tmp_path / tmp).read_text()) == {"v": 2}  # the previous version


def test_staged_temp_file_of_a_new_file_is_renamed(tmp_path):
    path = tmp_path / "config.json"
    stage_json(path, os.getpid())
    staged_inode = os.stat(tmp_path / tmp_files(tmp_path)[0]).st_ino
    write_json_atomic(path, {"x": 1})
    assert os.stat(path).st_ino == staged_inode
    assert tmp_files(tmp_path) == []


def test_another_process_temp_file_is_not_used(tmp_path):
    path = tmp_path / "state.json"
    stage_json(path, 1, {"v": 0})  # staged for pid 1, not us
    write_json_atomic(path, {"v": 1})
    assert json.loads(path.read_text()) == {"v": 1}
    assert tmp_files(tmp_path) == [".state.json.1.tmp"]


@pytest.fixture
def records(tmp_path):
    return Records(Layout(tmp_path).ensure())


def test_stage_claims_a_name_and_makes_what_a_start_writes(records):
    staged = records.stage("a" * 64, owner=os.getpid(), name="calm_knuth_0001")
    assert os.readlink(records.names / "calm_knuth_0001") == "a" * 64
    assert {"stdout.log", "stderr.log", "state.json", "upper", "work", "rootfs", "staged-by"} <= set(os.listdir(staged))
    assert not (staged / "config.json").exists()  # not a container yet
    assert State.from_dict(json.loads((staged / "state.json").read_text())).status.value == "created"
    rec = records.create(None, {"spec": {}}, "a" * 64, staged=staged, staged_name="calm_knuth_0001")
    assert rec.name == "calm_knuth_0001"
    assert tmp_files(staged) == [f".state.json.{os.getpid()}.tmp"]  # config's was used, state's waits


def test_a_given_name_frees_the_staged_one(records):
    staged = records.stage("b" * 64, owner=os.getpid(), name="calm_knuth_0002")
    rec = records.create("mine", {"spec": {}}, "b" * 64, staged=staged, staged_name="calm_knuth_0002")
    assert rec.name == "mine"
    assert not os.path.lexists(records.names / "calm_knuth_0002")


def test_a_name_in_use_fails_and_frees_the_staged_one(records):
    records.create("taken", {"spec": {}})
    staged = records.stage("c" * 64, owner=os.getpid(), name="calm_knuth_0003")
    with pytest.raises(Conflict):
        records.create("taken", {"spec": {}}, "c" * 64, staged=staged, staged_name="calm_knuth_0003")
    assert not os.path.lexists(records.names / "calm_knuth_0003")
    assert staged.exists()  # the staged directory is its owner's to discard (Prepared.discard)


def _spent_container(records, cid="d" * 64) -> "object":
    """A container directory as a run leaves it: written files in its write layer, logs, config."""
    name = f"calm_knuth_{cid[-4:]}"
    staged = records.stage(cid, owner=os.getpid(), name=name)
    rec = records.create(None, {"spec": {}}, cid, staged=staged, staged_name=name)
    (staged / "upper" / "etc").mkdir(exist_ok=True)  # a spare has it already
    for name in ("hosts", "hostname", "resolv.conf", "passwd"):
        (staged / "upper" / "etc" / name).write_text("x")
    for name in ("hosts", "hostname", "resolv.conf"):  # what the engine bind-mounts over them
        (staged / name).write_text("127.0.0.1 old\n")
    (staged / "upper" / "data").mkdir()
    (staged / "upper" / "data" / "secret").write_text("the last container's")
    (staged / "work" / "work").mkdir()
    (staged / "stdout.log").write_text("old output")
    (staged / "ports.json").write_text("{}")
    write_json_atomic(staged / "state.json", {"status": "exited"})
    return rec


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="spare directories are kept for root only")
def test_a_removed_container_directory_is_emptied_and_reused(records):
    rec = _spent_container(records)
    os.setxattr(rec.dir / "upper" / "etc", "trusted.overlay.opaque", b"y")  # rm -rf /etc; mkdir /etc
    os.chmod(rec.dir / "upper" / "etc", 0o777)
    inode = os.stat(rec.dir).st_ino
    records.delete(rec)
    assert not rec.dir.exists() and not os.path.lexists(records.names / "calm_knuth_dddd")
    (spare,) = records.layout.spare.iterdir()
    assert os.stat(spare).st_ino == inode
    # nothing of the old container is left in it, and nothing that makes it look like a container
    assert sorted(p.name for p in spare.iterdir()) == sorted(
        [".config.json.spare.tmp", ".state.json.spare.tmp", "hostname", "hosts", "resolv.conf", "rootfs",
         "staged-by", "state.json", "stderr.log", "stdout.log", "upper", "work"])
    assert sorted(p.name for p in (spare / "upper" / "etc").iterdir()) == ["hostname", "hosts", "resolv.conf"]
    assert os.listdir(spare / "upper") == ["etc"] and os.listdir(spare / "work") == []
    assert os.listxattr(spare / "upper" / "etc") == []
    assert os.stat(spare / "upper" / "etc").st_mode & 0o7777 == 0o755
    assert all(os.path.getsize(p) == 0 for p in spare.iterdir() if p.is_file())
    # the next staged container takes it, with its own temp files and nothing more
    staged = records.stage("e" * 64, owner=4242, name="calm_knuth_0010")
    assert os.stat(staged).st_ino == inode and list(records.layout.spare.iterdir()) == []
    assert sorted(tmp_files(staged)) == [".config.json.4242.tmp", ".state.json.4242.tmp"]
    assert (staged / "staged-by").read_text() == "4242"
    assert not (staged / "config.json").exists()
    assert records.all() == []  # a staged directory is no container


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="spare directories are kept for root only")
def test_spares_are_bounded(records):
    from jupybox.runtime import records as R

    spent = [_spent_container(records, f"{i:064x}") for i in range(R.SPARES + 2)]
    for rec in spent:
        records.delete(rec)
    assert len(list(records.layout.spare.iterdir())) == R.SPARES
    assert list(records.layout.containers.iterdir()) == []


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="spare directories are kept for root only")
def test_prune_removes_spares_and_a_spare_taken_by_a_process_that_died(tmp_path):
    from jupybox.runtime.engine import Engine

    eng = Engine(tmp_path / "root")
    records = eng.records
    for rec in [_spent_container(records, f"{i:064x}") for i in range(2)]:
        records.delete(rec)
    (first, second) = sorted(records.layout.spare.iterdir())
    os.rename(first, records.layout.containers / ("f" * 64))  # taken, then killed before staged-by
    eng.prune()
    assert list(records.layout.containers.iterdir()) == []
    assert list(records.layout.spare.iterdir()) == []
