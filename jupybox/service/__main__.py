"""python -m jupybox.service --root ROOT --name NAME: the store's service (see ``server``)."""

from __future__ import annotations

import argparse
import signal
import sys


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="jupybox-service")
    p.add_argument("--root", required=True)
    p.add_argument("--name", required=True, help="the socket's name (address.name())")
    p.add_argument("--linger", type=float, default=None, help="seconds to stay with no client and no container")
    args = p.parse_args(argv)
    # a terminal's ^C and hangup are for the processes in front of it, not for the service
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    import os

    os.chdir("/")  # a daemon pins no directory (nor the mount it is on)
    from . import address
    from .server import LINGER, Service

    got = address.listen(args.root, args.name)
    if got is None:
        sys.exit(0)  # another service holds this store's lock: clients connect to it
    listener, lock = got
    import os

    # a thread makes sandboxes while the loop serves (service.pool): the loop must not wait for the
    # GIL more than half a millisecond when a request comes
    sys.setswitchinterval(0.0005)

    linger = args.linger if args.linger is not None else float(os.environ.get("JUPYBOX_SERVICE_LINGER", LINGER))
    Service(args.root, listener, lock, args.name, linger=linger).serve()
    sys.exit(0)


if __name__ == "__main__":
    main()
