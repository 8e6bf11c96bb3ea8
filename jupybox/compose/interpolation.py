"""Variable interpolation exactly as the compose spec (and compose-go's ``template`` package) does it.

``$VAR`` and ``${VAR}``; ``${VAR:-default}`` (unset or empty), ``${VAR-default}`` (unset);
``${VAR:?error}`` / ``${VAR?error}`` (required); ``${VAR:+alt}`` / ``${VAR+alt}`` (alternative);
``$$`` for a literal ``$``. Defaults, alternatives and messages are themselves interpolated
(``${A:-${B:-c}}``). Names are ``[_a-zA-Z][_a-zA-Z0-9]*``.

The algorithm is compose-go's, step by step (``template/template.go``): one regex finds each
``$`` form; a braced form with an operator matches greedily to the *last* ``}`` of the string,
is cut at the brace that closes its own ``${``, and the rest is interpolated on its own. Which
operator applies is decided by the earliest of ``:?``, ``?``, ``:-``, ``-``, ``:+``, ``+`` in the
match. Unset variables without a default become "" with a warning, as in docker compose.

After substitution, strings at the paths compose-go casts (``ports[].target``, ``cpus``,
``read_only``...) become ints, floats or booleans (``CASTS``).
"""

from __future__ import annotations

import re
from typing import Callable

from .errors import ComposeError

_PATTERN = re.compile(
    r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|"
    r"\{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?](.*))?)\}|(?P<invalid>)))"
)
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")

Lookup = Callable[[str], "str | None"]


class InvalidTemplate(Exception):
    pass


class MissingRequired(Exception):
    def __init__(self, variable: str, reason: str):
        self.variable = variable
        self.reason = reason
        super().__init__(f"required variable {variable} is missing a value" + (f": {reason}" if reason else ""))


def _first_closing_brace(s: str) -> int:
    depth = 0
    i = 0
    while i < len(s):
        if s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if s[i] == "{":
            depth += 1
            i += 1  # compose-go skips the character after "{"
        i += 1
    return -1


def _operator_of(template: str) -> str | None:
    found = [(template.find(op), n, op) for n, op in enumerate(_OPERATORS) if op in template]
    return min(found)[2] if found else None


class Substitution:
    """One substitution run; remembers the variables that were unset (for the warnings)."""

    def __init__(self, lookup: Lookup):
        self.lookup = lookup
        self.unset: list[str] = []

    def substitute(self, template: str) -> str:
        error: list[Exception] = []

        def replace(m: re.Match) -> str:
            try:
                return self._replace(m.group(0))
            except (InvalidTemplate, MissingRequired) as e:
                if not error:
                    error.append(e)
                return ""

        out = _PATTERN.sub(replace, template)
        if error:
            raise error[0]
        return out

    def _replace(self, substring: str) -> str:
        op = _operator_of(substring)
        close = _first_closing_brace(substring)
        rest = ""
        if close > -1:
            rest = substring[close + 1 :]
            substring = substring[: close + 1]
        m = _PATTERN.search(substring)
        if m is None:
            raise InvalidTemplate(substring)
        if m.group("escaped"):
            return "$"
        name = m.group("named")
        braced = False
        if not name:
            name = m.group("braced")
            braced = True
        if not name:
            raise InvalidTemplate(substring)
        if braced and op is not None and op in name:
            value = self._operate(name, op)
            return value + self.substitute(rest)
        value = self.lookup(name)
        if value is None:
            if name not in self.unset:
                self.unset.append(name)
            return ""
        return value

    def _operate(self, substitution: str, op: str) -> str:
        name, _, arg = substitution.partition(op)
        value = self.lookup(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return self.substitute(arg)
            return value
        if op in (":+", "+"):
            if value is not None and (op == "+" or value != ""):
                return self.substitute(arg)
            return value if value is not None else ""
        # ":?" and "?"
        if value is None or (op == ":?" and value == ""):
            raise MissingRequired(name, self.substitute(arg))
        return value


def _to_bool(text: str):
    low = text.lower()
    if low in ("true", "y", "yes", "on"):
        return True
    if low in ("false", "n", "no", "off"):
        return False
    raise ValueError(f"invalid boolean: {text}")


def _to_int(text: str):
    return int(text, 10)


# compose-go's loader/interpolate.go: the typed fields whose interpolated strings are converted
CASTS: list[tuple[tuple, Callable]] = [
    (("services", "*", key), cast) for key, cast in (
        ("cpu_count", _to_int), ("cpu_percent", float), ("cpu_period", _to_int), ("cpu_quota", _to_int),
        ("cpu_rt_period", _to_int), ("cpu_rt_runtime", _to_int), ("cpus", float), ("cpu_shares", _to_int),
        ("init", _to_bool), ("oom_kill_disable", _to_bool), ("oom_score_adj", _to_int),
        ("pids_limit", _to_int), ("privileged", _to_bool), ("read_only", _to_bool), ("scale", _to_int),
        ("stdin_open", _to_bool), ("tty", _to_bool),
    )
] + [
    (("services", "*", "depends_on", "*", "required"), _to_bool),
    (("services", "*", "depends_on", "*", "restart"), _to_bool),
    (("services", "*", "deploy", "replicas"), _to_int),
    (("services", "*", "deploy", "restart_policy", "max_attempts"), _to_int),
    (("services", "*", "healthcheck", "retries"), _to_int),
    (("services", "*", "healthcheck", "disable"), _to_bool),
    (("services", "*", "ports", "[]", "target"), _to_int),
    (("services", "*", "ulimits", "*"), _to_int),
    (("services", "*", "ulimits", "*", "hard"), _to_int),
    (("services", "*", "ulimits", "*", "soft"), _to_int),
    (("services", "*", "volumes", "[]", "read_only"), _to_bool),
    (("services", "*", "volumes", "[]", "volume", "nocopy"), _to_bool),
] + [
    ((kind, "*", key), _to_bool) for kind, key in (
        ("networks", "external"), ("networks", "internal"), ("networks", "attachable"),
        ("networks", "enable_ipv4"), ("networks", "enable_ipv6"), ("volumes", "external"),
        ("secrets", "external"), ("configs", "external"),
    )
]


def _matches(path: tuple, pattern: tuple) -> bool:
    if len(path) != len(pattern):
        return False
    for part, pat in zip(path, pattern):
        if pat == "*":
            continue
        if pat == "[]":
            if not isinstance(part, int):
                return False
            continue
        if part != pat:
            return False
    return True


def _cast_for(path: tuple):
    for pattern, cast in CASTS:
        if _matches(path, pattern):
            return cast
    return None


def dotted(path) -> str:
    """("services", "web", "ports", 0) -> services.web.ports[0]"""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def interpolate(data, lookup: Lookup, where=None, path: tuple = ()):
    """A copy of ``data`` with every string interpolated and cast; ``where(path)`` -> (file, line)
    for the error messages. Returns (value, unset variable names)."""
    sub = Substitution(lookup)
    value = _interpolate(data, sub, where or (lambda p: (None, None)), path)
    return value, sub.unset


def _interpolate(value, sub: Substitution, where, path: tuple):
    from .yamlfile import Override

    if isinstance(value, str):
        try:
            out = sub.substitute(value)
        except InvalidTemplate:
            file, line = where(path)
            raise ComposeError(f"invalid interpolation format {value!r}: you may need to escape any $ with another $",
                               file, line, dotted(path)) from None
        except MissingRequired as e:
            file, line = where(path)
            raise ComposeError(str(e), file, line, dotted(path)) from None
        cast = _cast_for(path)
        if cast is None:
            return out
        try:
            return cast(out)
        except ValueError:
            file, line = where(path)
            raise ComposeError(f"failed to cast {out!r} to the expected type", file, line, dotted(path)) from None
    if isinstance(value, dict):
        return {k: _interpolate(v, sub, where, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, sub, where, path + (i,)) for i, v in enumerate(value)]
    if isinstance(value, Override):
        return Override(_interpolate(value.value, sub, where, path))
    return value
