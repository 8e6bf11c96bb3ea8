"""python -m jupybox.testing.netns -- CMD ...: run CMD in a network namespace of its own, loopback up.

The test suite runs so (``make test``): the bridges and nftables tables that jupybox's defaults
make (the default network is a bridge, as docker's) then live and die with that namespace, and a
test can never touch the host's networks. Needs root (or a user namespace around it).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m jupybox.testing.netns -- CMD [ARG...]", file=sys.stderr)
        return 2
    from ..linux import netdev
    from ..linux import syscalls as sc

    sc.unshare(sc.CLONE_NEWNET)
    netdev.set_up("lo")
    os.environ["JUPYBOX_TEST_NETNS"] = "1"
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
