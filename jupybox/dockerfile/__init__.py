"""Build images from Dockerfiles: ``jupybox build`` and :func:`build`.

    import jupybox.dockerfile
    img = jupybox.dockerfile.build("path/to/context", tags=["app:1"], build_args={"V": "2"},
                                   on_step=lambda ev: print(ev.kind, ev.instruction))

The way through the package, in the order a build takes it:

* reading: :mod:`.parser` (text → nodes; :mod:`.nodes`, :mod:`.arguments`, :mod:`.heredocs`,
  Go's text rules in :mod:`.gostrings`), :mod:`.expand` (variables; :mod:`.shellpattern`),
  :mod:`.instructions` (typed instructions and stages; ``RUN --mount`` in :mod:`.mounts`,
  hints in :mod:`.suggest`);
* the inputs: :mod:`.dockerignore`, :mod:`.context` (what COPY reads), :mod:`.sources`,
  base images and ``--from`` in :mod:`.bases`, build secrets in :mod:`.secrets`;
* building: :mod:`.builder` (stages, steps, the cache: :mod:`.cache`; images: :mod:`.state`),
  one module per kind of step: :mod:`.metadata` (config-only instructions), :mod:`.run_step`
  (RUN, in a container started by :mod:`.runner`, its mounts made by :mod:`.runmounts` with
  cache directories from :mod:`.cachemounts`), :mod:`.copy_step` (COPY/ADD, planned by
  :mod:`.copier`, ADD's archives and URLs in :mod:`.add_sources`), layers from either
  (:mod:`.layers`, :mod:`.upper`);
* the result: ``build -o`` in :mod:`.export`; showing it: :mod:`.events`, :mod:`.progress`.
  The entry points are in :mod:`.api`.
"""

from __future__ import annotations

__all__ = ["StepEvent", "apply_changes", "build", "parse"]


def __getattr__(name: str):
    # lazy: ``import jupybox`` must not pay for the builder
    if name in ("build", "parse", "apply_changes"):
        from . import api

        return getattr(api, name)
    if name == "StepEvent":
        from .events import StepEvent

        return StepEvent
    raise AttributeError(f"module 'jupybox.dockerfile' has no attribute {name!r}")
