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
