"""Validation against the compose spec's own JSON schema (``compose-spec.json``, see its NOTICE),
with the ``jsonschema`` package: no hand-written list of keys to drift from the spec.

Like compose-go, the merged model is validated after each file is merged in, and of all the
errors the most specific one is reported (the deepest instance path; an unknown key counts one
deeper than its mapping), with the file and line of that key.

Speed: importing ``jsonschema`` costs ~130 ms, and ~1.2 s more when ``rfc3987-syntax`` is
installed (Jupyter's stack installs it: its import builds a Lark grammar for IRI formats that the
compose schema never uses), so that module is hidden while ``jsonschema`` is imported (nothing
else sees the difference: it stays importable). And the verdict is remembered: a model whose
canonical JSON (with the schema's digest) was valid once is valid again, so ``ps``, ``logs`` or
``down`` after ``up`` skip the import altogether. Only valid models are remembered (an error is
always recomputed, with its line), as empty files named by the digest in the user's cache
(``$XDG_CACHE_HOME/jupybox/compose-valid``, at most ``CACHE_ENTRIES``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

from .errors import ComposeError
from .interpolation import dotted

SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
CACHE_ENTRIES = 512


@lru_cache(maxsize=1)
def _schema_bytes() -> bytes:
    return SCHEMA_FILE.read_bytes()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jupybox" / "compose-valid"


def digest(model: dict) -> str:
    h = hashlib.sha256(hashlib.sha256(_schema_bytes()).digest())
    h.update(json.dumps(model, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def _known_valid(key: str) -> bool:
    return (_cache_dir() / key).exists()


def _remember(key: str) -> None:
    d = _cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / key).touch()
        entries = list(d.iterdir())
        if len(entries) > CACHE_ENTRIES:
            entries.sort(key=lambda p: p.stat().st_mtime)
            for old in entries[: len(entries) - CACHE_ENTRIES]:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home: validate every time


def _import_jsonschema():
    hide = "rfc3987_syntax" not in sys.modules
    if hide:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # -> ImportError, skipped by jsonschema
    try:
        import jsonschema
    finally:
        if hide and sys.modules.get("rfc3987_syntax", 0) is None:
            del sys.modules["rfc3987_syntax"]
    return jsonschema


@lru_cache(maxsize=1)
def _validator():
    jsonschema = _import_jsonschema()
    schema = json.loads(_schema_bytes())
    return jsonschema.Draft7Validator(schema)  # the file's $schema (draft-07) lacks the "#" jsonschema keys on


def _score(err) -> int:
    return len(err.absolute_path) + (1 if err.validator == "additionalProperties" else 0)


def _most_specific(err):
    if not err.context:
        return err
    best = None
    for cause in err.context:
        cand = _most_specific(cause)
        if best is None or _score(cand) > _score(best):
            best = cand
    return best


def _type_words(want) -> str:
    names = [{"object": "mapping", "array": "list"}.get(t, t) for t in ([want] if isinstance(want, str) else want)]
    names.sort()
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _describe(err) -> tuple[tuple, str]:
    """(path of the offending key, message)."""
    import re

    path = tuple(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        props = err.schema.get("properties", {})
        patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
        extras = [k for k in err.instance if k not in props and not any(p.search(k) for p in patterns)]
        if extras:
            return path + (extras[0],), f"additional property {extras[0]!r} is not allowed"
    if err.validator == "type":
        return path, f"must be a {_type_words(err.validator_value)}"
    if err.validator == "enum":
        return path, f"must be one of {', '.join(map(str, err.validator_value))}"
    if err.validator in ("minimum", "maximum"):
        word = "greater" if err.validator == "minimum" else "less"
        return path, f"must be {word} than or equal to {err.validator_value}"
    if err.validator == "uniqueItems":
        return path, "contains duplicate items"
    if err.validator == "pattern" and isinstance(err.instance, str):
        return path, f"{err.instance!r} does not match {err.validator_value!r}"
    return path, err.message


def validate(model: dict, where) -> None:
    """Raise ComposeError for the most specific schema error; ``where(path)`` -> (file, line)."""
    key = digest(model)
    if _known_valid(key):
        return
    errors = list(_validator().iter_errors(model))
    if not errors:
        _remember(key)
        return
    best = None
    for err in errors:
        cand = _most_specific(err)
        if best is None or _score(cand) > _score(best):
            best = cand
    path, message = _describe(best)
    file, line = where(path)
    raise ComposeError(message, file, line, dotted(path) or None)
