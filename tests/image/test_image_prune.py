"""``image prune`` with docker's semantics, and its ``--filter`` values (docker's time formats)."""

from __future__ import annotations

import io
import os
import re
from datetime import datetime, timedelta, timezone

import pytest

from jbx_image_helpers import f, rootfs_tar
from jupybox.errors import UsageError
from jupybox.image import import_rootfs, scratch
from jupybox.image.filters import PruneFilters, go_duration, parse_until

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize("value, expected", [
    ("10m", NOW - timedelta(minutes=10)),
    ("1h30m", NOW - timedelta(hours=1, minutes=30)),
    ("-1.5h", NOW + timedelta(hours=1.5)),
    ("300ms", NOW - timedelta(milliseconds=300)),
    ("1700000000", datetime.fromtimestamp(1700000000, timezone.utc)),
    ("10", datetime.fromtimestamp(10, timezone.utc)),  # no unit: not a duration, a Unix time
    ("1700000000.5", datetime.fromtimestamp(1700000000, timezone.utc) + timedelta(milliseconds=500)),
    ("2024-01-02", datetime(2024, 1, 2, tzinfo=NOW.tzinfo)),  # no zone: the local one
    ("2024-01-02T15", datetime(2024, 1, 2, 15, tzinfo=NOW.tzinfo)),
    ("2024-01-02T15:04", datetime(2024, 1, 2, 15, 4, tzinfo=NOW.tzinfo)),
    ("2024-01-02T15:04:05", datetime(2024, 1, 2, 15, 4, 5, tzinfo=NOW.tzinfo)),
    ("2024-01-02T15:04:05.25", datetime(2024, 1, 2, 15, 4, 5, 250000, tzinfo=NOW.tzinfo)),
    ("2024-01-02T15:04:05Z", datetime(2024, 1, 2, 15, 4, 5, tzinfo=timezone.utc)),
    ("2024-01-02T15:04:05.123456789+01:00", datetime(2024, 1, 2, 15, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))),
    ("2024-01-02Z", datetime(2024, 1, 2, tzinfo=timezone.utc)),
    ("2024-01-02T15-03:00", datetime(2024, 1, 2, 15, tzinfo=timezone(timedelta(hours=-3)))),
])
def test_until_formats(value, expected):
    assert parse_until(value, NOW) == expected


@pytest.mark.parametrize("value", ["notatime", "2024-13-01", "2024-01-02T25:00", "1h-", "tomorrow"])
def test_until_refuses_what_docker_refuses(value):
    with pytest.raises(UsageError):
        parse_until(value, NOW)


def test_go_durations():
    assert go_duration("0") == 0 and go_duration("1.5s") == 1.5 and go_duration("2h45m") == 2 * 3600 + 45 * 60
    assert go_duration("1") is None and go_duration("h") is None and go_duration("") is None


def test_filter_keys():
    f = PruneFilters.parse(["until=1h", "label=a", "label=b=2", "label!=c"], NOW)
    assert f.until == NOW - timedelta(hours=1) and f.labels == ["a", "b=2"] and f.not_labels == ["c"]
    with pytest.raises(UsageError, match="Invalid filter 'bogus'"):
        PruneFilters.parse(["bogus=1"])
    with pytest.raises(UsageError, match="more than one until"):
        PruneFilters.parse(["until=1h", "until=2h"])


def _img(store, ref, *changes, content=b"x"):
    return import_rootfs(store, io.BytesIO(rootfs_tar([f("data", content)])), ref, list(changes))


def test_dangling_by_default_every_unused_image_with_all(image_store):
    store = image_store
    old = _img(store, "app:1", content=b"old")
    new = _img(store, "app:1", content=b"new")  # the tag moves: the old image is dangling
    used = _img(store, "used:1", content=b"used")
    kept = _img(store, "kept:1", content=b"kept")
    gone_in_use = _img(store, "gone:1", content=b"gone")
    users = {used.id, gone_in_use.id}
    store.in_use = lambda image_id: image_id in users
    store.remove("gone:1", force=True)  # forced while in use: dangling, and still used
    assert [i.refs for i in store.list() if i.id == old.id] == [[]]

    res = store.prune()
    assert res["deleted"] == [f"deleted: {old.id}"] and res["bytes"] > 0
    assert not store.has_blob(old.id) and not store.has_layer(old.diff_ids[0])
    assert store.exists(gone_in_use.id)  # dangling, but a container uses it

    res = store.prune(all=True)
    assert sorted(res["deleted"]) == sorted(["untagged: app:1", f"deleted: {new.id}", "untagged: kept:1",
                                             f"deleted: {kept.id}"])
    left = {i.id for i in store.list() if not i.is_host}
    assert left == {used.id, gone_in_use.id}
    assert store.check() == []


def test_build_parents_are_not_dangling(image_store):
    """docker prunes dangling *heads*: an untagged image whose layers start another image's (a
    build's intermediate step) stays until that image goes."""
    store = image_store
    base = _img(store, "", content=b"base")
    child = store.create_image({"config": {}, "rootfs": {"type": "layers", "diff_ids": base.diff_ids + base.diff_ids}},
                               [base.layers[0]["digest"]] * 2, ["child:1"])
    assert store.prune()["deleted"] == []
    store.remove("child:1")
    assert sorted(store.prune()["deleted"]) == [f"deleted: {base.id}"]
    assert not store.exists(child.id)


def test_until_and_labels(image_store):
    store = image_store
    a = _img(store, "a:1", "LABEL keep=yes", content=b"a")
    b = _img(store, "b:1", "LABEL tier=web", content=b"b")
    assert store.prune(all=True, filters=["until=2000-01-01"])["deleted"] == []  # all are newer
    assert store.prune(all=True, filters=["label!=keep"])["deleted"] == ["untagged: b:1", f"deleted: {b.id}"]
    assert store.prune(all=True, filters=["label=keep=no"])["deleted"] == []
    future = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert store.prune(all=True, filters=[f"until={future}", "label=keep"])["deleted"] == \
        ["untagged: a:1", f"deleted: {a.id}"]


def test_prune_removes_crash_leftovers_and_garbage(image_store):
    store = image_store
    _img(store, "keep:1")
    junk = store.write_blob(b"nobody's")
    # this pid with another start time: a writer that is gone
    os.rename(store.tmp_dir("layer"), store.tmp / re.sub(r"-s\d+-", "-s1-", scratch.name("layer")))
    res = store.prune()
    assert res["deleted"] == [] and res["bytes"] > 0
    assert not store.has_blob(junk) and os.listdir(store.tmp) == []
