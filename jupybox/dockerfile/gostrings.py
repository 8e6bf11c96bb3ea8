"""Go's notions of whitespace and quoting, which BuildKit's parser and messages follow.

Python's ``str.isspace`` also counts the ASCII separators ``\\x1c``-``\\x1f``; Go's
``unicode.IsSpace`` does not, so ``RUN a\\x1cb`` is one word for BuildKit and must be here.
A Dockerfile that is not UTF-8 is read with ``surrogateescape`` (BuildKit reads bytes): its
stray bytes are the code points U+DC80-U+DCFF, and Go shows them as U+FFFD where it decodes text.
"""

from __future__ import annotations

import re

# unicode.IsSpace: the Latin-1 spaces, then the White_Space property
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE = re.compile(f"[{GO_SPACE}]")
_LEADING = re.compile(f"^[{GO_SPACE}]+")
_TRAILING = re.compile(f"[{GO_SPACE}]+$")
_SURROGATES = re.compile("[\ud800-\udfff]")


def is_space(ch: str) -> bool:
    return _SPACE.match(ch) is not None


def trim_space(s: str) -> str:
    """strings.TrimSpace."""
    return _TRAILING.sub("", _LEADING.sub("", s))


def trim_left_space(s: str) -> str:
    return _LEADING.sub("", s)


def space_runs() -> re.Pattern:
    """Runs of spaces or of non-spaces, in order (word splitting in one regex pass)."""
    return re.compile(f"([{GO_SPACE}]+)|([^{GO_SPACE}]+)")


def valid_text(s: str) -> str:
    """``s`` as Go's decoders leave it: stray bytes and lone surrogates become U+FFFD."""
    return _SURROGATES.sub("\ufffd", s) if _SURROGATES.search(s) else s


def utf8_len(s: str) -> int:
    """The length in bytes of text read from a file (stray bytes count one)."""
    return len(s.encode("utf-8", "surrogateescape")) if not s.isascii() else len(s)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            "\\": "\\\\", '"': '\\"'}


def quote(s: str) -> str:
    """strconv.Quote: ``"..."`` with Go's escapes (a stray byte as ``\\xNN``)."""
    out = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch.isprintable() and not 0xD800 <= o <= 0xDFFF:
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)
