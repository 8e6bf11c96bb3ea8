"""Builds from BuildKit's integration tests (buildkit_build_cases.py), run for real: RUN steps are
containers, and each result is read back from a ``type=local`` export, as BuildKit's tests read
theirs."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import buildkit_build_cases as cases  # noqa: E402

from jupybox.errors import BuildError  # noqa: E402

pytestmark = pytest.mark.root


def _id(case) -> str:
    return case["source"].split()[-1] + ("-error" if "error" in case else "")


@pytest.mark.parametrize("case", cases.CASES, ids=[_id(c) for c in cases.CASES])
def test_buildkit_build_case(bb, tmp_path, case):
    out = tmp_path / "out"
    kw = dict(files=case.get("files"), build_args=case.get("build_args"), secrets=case.get("secrets"),
              target=case.get("target"), outputs=[f"type=local,dest={out}"])
    if "error" in case:
        with pytest.raises(BuildError) as ei:
            bb.build(case["dockerfile"], **kw)
        assert case["error"] in str(ei.value)
        assert "\n" not in str(ei.value)
    else:
        bb.build(case["dockerfile"], **kw)
        for path, want in case["expect"].items():
            if path.startswith("!"):
                assert want not in (out / path[1:]).read_text(), path
            elif want is None:
                assert (out / path).is_dir(), path
            elif want is ...:
                assert (out / path).exists(), path
            elif isinstance(want, tuple):
                assert want[1] in (out / path).read_text(), path
            else:
                assert (out / path).read_text() == want, path
    assert bb.leftovers() == []
