"""jupybox.linux.netdev: bringing lo up in a fresh network namespace (in a forked child)."""

from __future__ import annotations

import os
import socket

import pytest

from jupybox.linux import netdev
from jupybox.linux import syscalls as sc


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespace)")
def test_set_up_lo_in_new_netns(in_child):
    def child():
        sc.unshare(sc.CLONE_NEWNET)

        def lo_up() -> bool:  # (/sys still shows the old namespace: ask the network stack itself)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.connect(("127.0.0.1", 9))
                return True
            except OSError:
                return False
            finally:
                s.close()

        before = lo_up()
        netdev.set_up("lo")
        after = lo_up()
        try:
            netdev.set_up("no-such-if0")
            missing = None
        except OSError as e:
            missing = e.errno
        return before, after, missing

    before, after, missing = in_child(child)
    assert before is False  # a new network namespace starts with lo down
    assert after is True
    assert missing == 19  # ENODEV
