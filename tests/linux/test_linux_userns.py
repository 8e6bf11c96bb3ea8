"""Id maps for rootless containers, from /etc/subuid-style files."""

from __future__ import annotations

from jupybox.linux.userns import IdMap, idmap_for, subordinate_range


def test_subordinate_range_by_name_or_uid(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n# junk\nbad line\n1001:300000:1000\nbob:200000:0\n")
    assert subordinate_range(str(f), "alice", 1000) == (100000, 65536)
    assert subordinate_range(str(f), "carol", 1001) == (300000, 1000)
    assert subordinate_range(str(f), "bob", 1002) is None  # an empty range is no range
    assert subordinate_range(str(tmp_path / "missing"), "alice", 1000) is None


def test_full_map_needs_both_files_and_the_helpers(tmp_path):
    su, sg = tmp_path / "subuid", tmp_path / "subgid"
    su.write_text("alice:100000:65536\n")
    sg.write_text("alice:200000:65536\n")
    m = idmap_for(1000, 1000, "alice", str(su), str(sg), helpers=True)
    assert m.full and m.uids == ((0, 1000, 1), (1, 100000, 65536)) and m.gids[1] == (1, 200000, 65536)
    assert m.inside_uid_exists(65536) and not m.inside_uid_exists(65537)
    assert "100000-165535" in m.describe()
    assert not idmap_for(1000, 1000, "alice", str(su), str(sg), helpers=False).full
    sg.write_text("")
    single = idmap_for(1000, 1000, "alice", str(su), str(sg), helpers=True)
    assert single == IdMap(((0, 1000, 1),), ((0, 1000, 1),)) and not single.full
    assert not single.inside_uid_exists(1) and "single id" in single.describe()
