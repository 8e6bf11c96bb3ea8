"""Compose YAML: YAML 1.2 scalars, anchors and merge keys, lines of keys, merge tags, limits."""

from __future__ import annotations

import pytest

from jupybox.compose.errors import ComposeError
from jupybox.compose.yamlfile import MAX_NODES, RESET, Override, load_file, load_text


def one(text: str):
    docs = load_text(text, "c.yaml")
    assert len(docs) == 1
    return docs[0]


def test_yaml_1_2_scalars_as_compose_go_reads_them():
    d = one("a: no\nb: on\nc: 22:22\nd: 0o17\ne: 0x1f\nf: 017\ng: 2001-12-14\nh: true\ni: ~\nj: 1.5e3\nk: .inf\n").data
    assert d == {"a": "no", "b": "on", "c": "22:22", "d": 15, "e": 31, "f": 17, "g": "2001-12-14", "h": True,
                 "i": None, "j": 1500.0, "k": float("inf")}


def test_anchors_merge_keys_and_lines():
    doc = one("""\
x-base: &base
  restart: always
  environment:
    A: "1"
services:
  web:
    <<: *base
    image: busybox
    restart: "no"
""")
    web = doc.data["services"]["web"]
    assert web == {"restart": "no", "environment": {"A": "1"}, "image": "busybox"}
    assert doc.lines[("services", "web", "image")] == 8
    assert doc.lines[("services", "web", "restart")] == 9  # the explicit key, not the anchor's
    assert doc.lines[("services", "web", "environment", "A")] == 4  # where the merged key was written
    assert doc.line_of(("services", "web", "environment", "A", "deeper")) == 4


def test_reset_and_override_tags():
    d = one("a: !reset null\nb: !override [1, 2]\nc: !override {x: 1}\nd: !override 3\n").data
    assert d["a"] is RESET
    assert d["b"] == Override([1, 2]) and d["c"] == Override({"x": 1}) and d["d"] == Override(3)


@pytest.mark.parametrize("text,line,message", [
    ("services:\n  web: {}\n  web: {}\n", 3, "mapping key 'web' already defined"),
    ("a: [1\n", 2, ""),
    ("- 1\n", 1, "the top level must be a mapping"),
    ("? [a]\n: 1\n", 1, "a mapping key must be a scalar"),
])
def test_errors_name_the_line(text, line, message):
    with pytest.raises(ComposeError) as e:
        load_text(text, "c.yaml")
    assert e.value.file == "c.yaml" and e.value.line == line
    assert message in e.value.message
    assert "\n" not in str(e.value)


def test_alias_bomb_is_refused_before_it_is_expanded():
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefg"[i]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(ComposeError, match=f"more than {MAX_NODES} YAML nodes"):
        load_text("\n".join(levels) + "\n", "bomb.yaml")


def test_limits_on_files(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: " + b"x" * (4 << 20) + b"\n")
    with pytest.raises(ComposeError, match="larger than 4 MiB"):
        load_file(str(big))
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: \xff\n")
    with pytest.raises(ComposeError, match="not UTF-8"):
        load_file(str(bad))
    deep = "a: " + "[" * 100 + "]" * 100 + "\n"
    with pytest.raises(ComposeError, match="nested deeper"):
        load_text(deep, "deep.yaml")


def test_several_documents():
    docs = load_text("services: {a: {image: x}}\n---\nservices: {b: {image: y}}\n", "c.yaml")
    assert [list(d.data["services"]) for d in docs] == [["a"], ["b"]]
