"""Variable expansion against BuildKit's shell-lexer tables (buildkit_shell_cases.py): envVarTest,
wordsTest, and the cases of its lex_test.go."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import buildkit_shell_cases as cases  # noqa: E402

from jupybox.dockerfile.expand import ExpandError, Lexer  # noqa: E402
from jupybox.dockerfile.shellpattern import PatternError, Pattern, _reverse  # noqa: E402


@pytest.mark.parametrize("word,expected", cases.ENV_VAR_CASES)
def test_env_var_table(word, expected):
    lx = Lexer("\\")
    if expected is None:
        with pytest.raises(ExpandError):
            lx.process_word(word, cases.ENV_VAR_ENVIRONMENT)
    else:
        assert lx.process_word(word, cases.ENV_VAR_ENVIRONMENT) == expected


def _words_rows():
    env: dict[str, str] = {}
    rows = []
    for text, expected in cases.WORDS_CASES:
        if text == "ENV":
            k, _, v = expected.partition("=")
            env[k] = v
        else:
            rows.append((text, dict(env), expected))
    return rows


@pytest.mark.parametrize("text,env,expected", _words_rows())
def test_words_table(text, env, expected):
    lx = Lexer("\\")
    if expected is None:
        with pytest.raises(ExpandError):
            lx.process_words(text, env)
    else:
        assert lx.process_words(text, env) == expected


@pytest.mark.parametrize("word,env,expected,found,missing", cases.MATCHES_CASES)
def test_matches_table(word, env, expected, found, missing):
    lx = Lexer("\\")
    if expected is None:
        with pytest.raises(ExpandError):
            lx.process(word, env)
        return
    r = lx.process(word, env)
    assert r.word == expected
    assert r.used == found | missing


@pytest.mark.parametrize("word,env,expected", cases.MANDATORY_CASES)
def test_mandatory_variables(word, env, expected):
    lx = Lexer("\\")
    if expected.startswith("error: "):
        with pytest.raises(ExpandError, match=expected[len("error: "):]):
            lx.process_word(word, env)
    else:
        assert lx.process_word(word, env) == expected


@pytest.mark.parametrize("pattern", cases.INVALID_PATTERNS)
def test_invalid_patterns(pattern):
    with pytest.raises(PatternError):
        Pattern(pattern)


@pytest.mark.parametrize("pattern,reversed_", cases.REVERSED_PATTERNS)
def test_reversed_patterns(pattern, reversed_):
    assert _reverse(pattern) == reversed_


@pytest.mark.parametrize("text,words", [("80${P#x}", ["808"]), ("a${P:-y} b", ["a8", "b"]),
                                        ("${Q:-1 2}3", ["1", "23"])])
def test_words_with_nested_modifiers_follow_the_documented_rules(text, words):
    """BuildKit's ProcessWords loses what precedes a ${VAR<modifier>word} (a shared buffer: see
    jupybox.dockerfile.expand._Words): ["8"] for "80${P#x}". The rules give the word itself."""
    assert Lexer("\\").process_words(text, {"P": "8"}) == words
