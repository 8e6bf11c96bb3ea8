"""``(did you mean RUN?)``: BuildKit's suggestions (``util/suggest``): an option within edit
distance 2 of what was written, in the case it was written in. The distance counts a swap of two
neighbours as one edit (BuildKit's Levenshtein counts two, and its options come from a Go map in
random order: ``RNU`` may get ``ENV`` there)."""

from __future__ import annotations


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def search(value: str, options, case_sensitive: bool = True) -> str | None:
    if len(value) > 64:  # a long word is no typo of a short option (and the distance is quadratic)
        return None
    val = value if case_sensitive else value.lower()
    match = None
    best = 3
    for opt in options:
        o = opt if case_sensitive else opt.lower()
        if val == o:
            return None  # an exact match: the error is about something else
        d = _distance(val, o)
        if d < best:
            best = d
            match = o
    if match is None or case_sensitive:
        return match
    if value == value.lower():
        return match.lower()
    if value == value.upper():
        return match.upper()
    return match


def with_hint(message: str, value: str, options, case_sensitive: bool = True) -> str:
    match = search(value, options, case_sensitive)
    return f"{message} (did you mean {match}?)" if match else message
