"""python -m jupybox.testing.prefetch: make the test suite's cached fixtures that need the network.

``make test`` runs the suite in a network namespace of its own (``jupybox.testing.netns``), where
the Debian mirror cannot be reached: what must be downloaded is made here first, once, and cached
(``jupybox.testing.cache_dir()``, never in git). A later run finds it all and downloads nothing.
A fixture that downloads anything belongs in ``FIXTURES``.
"""

from __future__ import annotations

import sys
import time

from . import cache_dir
from .kernels import debian_kernel
from .rootfs import busybox_tarball, debian_tarball

# (what, how): each returns a path, or None when its tool is missing (the tests then skip)
FIXTURES = [
    ("busybox rootfs", lambda c: busybox_tarball(c)),
    ("Debian + python3", lambda c: debian_tarball(c, include=("python3",))),
    ("Debian + python3 + ipykernel", lambda c: debian_tarball(c, include=("python3", "python3-ipykernel"))),
    ("Debian + redis-server", lambda c: debian_tarball(c, include=("redis-server",))),
    ("Debian + python3-pip", lambda c: debian_tarball(c, include=("python3", "python3-pip"))),
    ("wheels of the environments' package index", lambda c: _env_wheels(c)),
    ("Debian 11's kernel for the v2 guest's second boot", lambda c: debian_kernel(c)),
]


def _env_wheels(cache):
    from .pipindex import ENV_INDEX, pip_wheels

    return [pip_wheels(cache, name, reqs) for name, reqs in ENV_INDEX.items()][0]


def main() -> int:
    cache = cache_dir()
    for what, make in FIXTURES:
        t0 = time.monotonic()
        path = make(cache)
        took = time.monotonic() - t0
        note = "skipped (its tool is not installed)" if path is None else f"{path} ({took:.1f} s)"
        print(f"test fixture {what}: {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
