"""jupybox.units: sizes and durations as docker and Go write them."""

from __future__ import annotations

import pytest

from jupybox.units import parse_duration


@pytest.mark.parametrize("text,ns", [("1m30s", 90 * 10**9), ("500ms", 500 * 10**6), ("-1h", -3600 * 10**9),
                                     ("0", 0), ("+1.5s", 1_500_000_000)])
def test_go_durations(text, ns):
    assert parse_duration(text) == ns


def test_days_and_weeks_only_when_asked():
    assert parse_duration("2w", days=True) == 14 * 86400 * 10**9
    with pytest.raises(ValueError, match="invalid duration '1d'"):
        parse_duration("1d")


@pytest.mark.parametrize("text", ["", "-", "1", "5x", "s"])
def test_what_is_no_duration_is_a_value_error(text):
    with pytest.raises(ValueError, match="invalid duration"):  # ("" was an IndexError)
        parse_duration(text)
