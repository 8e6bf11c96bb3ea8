"""python -m jupybox.testing.prefetch, what `make test` runs first. It downloads, so only its shape is
checked here; `make test` itself and scripts/fresh-debian.sh run it."""

from __future__ import annotations


def test_it_imports_and_lists_its_fixtures():
    from jupybox.testing import prefetch  # make test stopped at once on an ImportError here

    assert prefetch.FIXTURES and all(isinstance(what, str) and callable(make) for what, make in prefetch.FIXTURES)
    assert callable(prefetch.main)
