"""Interpolation against compose-go's own template tests (template/template_test.go), plus casts
and error messages with the file, line and key."""

from __future__ import annotations

import pytest

from jupybox.compose.errors import ComposeError
from jupybox.compose.interpolation import InvalidTemplate, MissingRequired, Substitution, interpolate

ENV = {"FOO": "first", "BAR": "", "JSON": '{"json":2}'}


def sub(template: str, env=ENV) -> str:
    return Substitution(env.get).substitute(template)


@pytest.mark.parametrize("template,expected", [
    ("$${foo}", "${foo}"),
    ("foo", "foo"),
    ("a $ string", "a $ string"), ("^REGEX$", "^REGEX$"), ("$}", "$}"), ("$", "$"),
    ("$FOO-bar", "first-bar"),
    ("This ${missing} var", "This  var"), ("This ${BAR} var", "This  var"),
    ("This $FOO var", "This first var"), ("This ${FOO} var", "This first var"),
    ("ok ${missing:-def}", "ok def"), ("ok ${missing-def}", "ok def"),
    ("${A:+${A},}B", "B"),
    ("ok ${BAR:-def}", "ok def"), ("ok ${FOO:-def}", "ok first"), ("ok ${BAR-def}", "ok "),
    ("ok ${UNSET_VAR:+presence_value}", "ok "), ("ok ${UNSET_VAR+presence_value}", "ok "),
    ("ok ${FOO:+presence_value}", "ok presence_value"), ("ok ${FOO+presence_value}", "ok presence_value"),
    ("ok ${BAR+presence_value}", "ok presence_value"), ("ok ${BAR:+presence_value}", "ok "),
    ("ok ${BAR:-/non:-alphanumeric}", "ok /non:-alphanumeric"),
    # the operator text outside the ${...} does not interfere
    ("-ok ${BAR:-defaultValue}", "-ok defaultValue"), ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
    (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"), (":-ok ${BAR-defaultValue}", ":-ok "),
    (":?ok ${BAR:-defaultValue}", ":?ok defaultValue"), ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
    # nested defaults
    ("ok ${UNSET_VAR-$FOO}", "ok first"), ("ok ${UNSET_VAR-${FOO}}", "ok first"),
    ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"), ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
    ("ok ${BAR+$FOO}", "ok first"),
    ("ok ${SUBDOMAIN:-redis}.${FOO:?}", "ok redis.first"),
    ("${UNSET_VAR-myerror?msg}", "myerror?msg"), ("${FOO?bar-baz}", "first"),
    ('ok ${missing:-{"json":1}}', 'ok {"json":1}'), ('ok ${JSON:-{"json":1}}', 'ok {"json":2}'),
    ("${FOO}${FOO}-$$FOO", "firstfirst-$FOO"),
])
def test_substitution_as_compose_go(template, expected):
    assert sub(template) == expected


@pytest.mark.parametrize("template", ["${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}"])
def test_invalid_templates(template):
    with pytest.raises(InvalidTemplate):
        sub(template)


def test_required_variables():
    with pytest.raises(MissingRequired) as e:
        sub("${UNSET_VAR?bar-baz}")
    assert (e.value.variable, e.value.reason) == ("UNSET_VAR", "bar-baz")
    with pytest.raises(MissingRequired):
        sub("${BAR:?must not be empty}")  # set but empty
    assert sub("${BAR?only unset fails}") == ""
    with pytest.raises(MissingRequired) as e:
        sub("${NOPE:?${FOO} is needed}")
    assert e.value.reason == "first is needed"  # the message is interpolated too


def test_unset_variables_are_reported_once_and_lazily():
    s = Substitution(ENV.get)
    s.substitute("${A:+${NOT_EVALUATED}} $X ${X} ${Y:-${Z}}")
    assert s.unset == ["X", "Z"]


def test_casts_and_errors_name_file_line_and_key():
    model = {"services": {"web": {"ports": [{"target": "${P}"}], "read_only": "${RO}", "cpus": "${C}",
                                  "environment": {"N": "${P}"}}}}
    out, unset = interpolate(model, {"P": "80", "RO": "yes", "C": "0.5"}.get)
    web = out["services"]["web"]
    assert web["ports"][0]["target"] == 80 and web["read_only"] is True and web["cpus"] == 0.5
    assert web["environment"]["N"] == "80"  # not a typed field: stays a string
    where = lambda path: ("compose.yaml", 7)  # noqa: E731
    with pytest.raises(ComposeError) as e:
        interpolate({"services": {"web": {"image": "${TAG:?set TAG}"}}}, {}.get, where)
    assert str(e.value) == "compose.yaml:7: services.web.image: required variable TAG is missing a value: set TAG"
    assert e.value.exit_code == 1
    with pytest.raises(ComposeError, match=r"services.web.read_only: failed to cast 'maybe'"):
        interpolate({"services": {"web": {"read_only": "${RO}"}}}, {"RO": "maybe"}.get, where)
