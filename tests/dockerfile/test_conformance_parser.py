"""The parser against BuildKit's own parser cases (tables in buildkit_parser_cases.py): each
Dockerfile gives the same nodes as BuildKit's ``Node.Dump()`` (its ``result`` files), the same
heredocs, words, JSON arrays, directives, line numbers and refusals."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import buildkit_parser_cases as cases  # noqa: E402

from jupybox.dockerfile.arguments import NotStrings, parse_json, parse_words  # noqa: E402
from jupybox.dockerfile.heredocs import HeredocError, heredocs_in_line, parse_heredoc  # noqa: E402
from jupybox.dockerfile.parser import parse  # noqa: E402
from jupybox.errors import BuildError  # noqa: E402


def go_quote(s: str) -> str:
    """strconv.Quote, for the dumps (written here, apart from the code under test)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def dump(node) -> str:
    """BuildKit's Node.Dump() of one instruction."""
    text = node.cmd
    if node.flags:
        text += " [" + " ".join(go_quote(f) for f in node.flags) + "]"
    if node.cmd == "onbuild" and node.sub is not None:
        text += " (" + dump(node.sub) + ")"
    else:
        for a in node.args:
            text += " " + go_quote(a)
    return text.strip()


@pytest.mark.parametrize("name,dockerfile,expected", cases.PARSE_CASES, ids=[c[0] for c in cases.PARSE_CASES])
def test_buildkit_parse_cases(name, dockerfile, expected):
    assert [f"({dump(n)})" for n in parse(dockerfile).nodes] == expected


@pytest.mark.parametrize("name,dockerfile", cases.NEGATIVE_CASES, ids=[c[0] for c in cases.NEGATIVE_CASES])
def test_buildkit_negative_cases(name, dockerfile):
    with pytest.raises(BuildError, match=r"^Dockerfile:\d+: "):
        nodes = parse(dockerfile).nodes
        # BuildKit's parser leaves ENV without a value and nested JSON to the instruction check
        from jupybox.dockerfile.instructions import from_node

        for n in nodes:
            from_node(n)


def test_line_numbers():
    nodes = parse(cases.LINE_NUMBERS_DOCKERFILE).nodes
    assert [(n.start, n.end) for n in nodes] == cases.LINE_NUMBERS


def test_heredocs_extracted():
    nodes = parse(cases.HEREDOC_DOCKERFILE).nodes[1:]
    assert len(nodes) == len(cases.HEREDOC_EXPECTED)
    for node, expected in zip(nodes, cases.HEREDOC_EXPECTED):
        assert [(h.name, h.content, h.expand, h.chomp, h.fd) for h in node.heredocs] == expected, node


def test_json_forms_have_no_heredocs():
    assert all(not n.heredocs for n in parse(cases.JSON_HEREDOC_DOCKERFILE).nodes)


@pytest.mark.parametrize("word", cases.VALID_HEREDOC_WORDS)
def test_heredoc_words(word):
    assert parse_heredoc(word).name == "EOF"


@pytest.mark.parametrize("word", cases.NOT_HEREDOC_WORDS)
def test_not_heredoc_words(word):
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("word", cases.INVALID_HEREDOC_WORDS)
def test_invalid_heredoc_words(word):
    with pytest.raises(HeredocError):
        parse_heredoc(word)


@pytest.mark.parametrize("line,names", cases.HEREDOCS_FROM_LINE)
def test_heredocs_from_line(line, names):
    assert [h.name for h in heredocs_in_line(line)] == names


@pytest.mark.parametrize("text,words", cases.PARSE_WORDS)
def test_parse_words(text, words):
    assert parse_words(text, "\\") == words


def test_empty_continuation_lines_are_warned():
    warnings = parse(cases.EMPTY_CONTINUATION_DOCKERFILE).warnings
    assert [int(w.split(":")[1]) for w in warnings] == cases.EMPTY_CONTINUATION_WARNED


@pytest.mark.parametrize("text,value", cases.VALID_JSON)
def test_json_arrays_of_strings(text, value):
    assert parse_json(text) == value


@pytest.mark.parametrize("text", cases.NOT_STRING_ARRAYS)
def test_json_arrays_of_other_things(text):
    with pytest.raises(NotStrings):
        parse_json(text)


@pytest.mark.parametrize("text,escape", cases.DIRECTIVES)
def test_directives(text, escape):
    assert parse(text).escape == escape


def test_a_line_over_65535_bytes_is_refused():
    with pytest.raises(BuildError) as ei:
        parse(cases.SCANNER_ERROR_DOCKERFILE)
    assert str(ei.value) == f"Dockerfile:3: {cases.SCANNER_ERROR}"
