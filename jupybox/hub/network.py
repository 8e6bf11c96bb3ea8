"""The hub's network: one jupybox bridge network for every user server of a hub, and its firewall.

Why a bridge and not the host's network on a port the spawner picks: on the host's network a
server shares the host's loopback, so it could reach the hub's database (a PostgreSQL on
127.0.0.1), the proxy's API port, and every other user's server on its port, with nothing in the
way but their own authentication. On a bridge each server has a network namespace of its own;
the proxy (on the host) reaches it at its address on the bridge (``<address>:8888``, no port to
publish or to pick), and :mod:`jupybox.hub.firewall` says what the server may reach. One
network for all servers rather than one per user: a bridge and a /16 per user would exhaust
jupybox's default address pools (31 networks) with one class.

The network is made on the first start and removed, with its firewall, when the last server of
the hub has stopped and no start is under way (counted in this process: the hub is one process).
"""

from __future__ import annotations

import threading
from typing import Callable

from .. import errors
from . import firewall, names

_lock = threading.Lock()
_starting: dict[tuple[str, str], int] = {}  # (store, network) -> starts under way in this process


class HubNetwork:
    """The network ``name`` of the store at ``root`` (a jupybox store path)."""

    def __init__(self, root: str, name: str, ports: list[int]):
        self.root = root
        self.name = name
        self.ports = list(ports)

    def _networks(self):
        from ..api import engine
        from ..network import networks

        return networks(engine(self.root or None).layout)

    @property
    def layout_root(self) -> str:
        from ..api import engine

        return str(engine(self.root or None).layout.root)

    def acquire(self) -> dict:
        """Before a start: the network (made if missing) with its firewall; -> its state
        (``bridge``, ``subnet``, ``gateway``). Pair with :meth:`release_start`."""
        key = (self.layout_root, self.name)
        with _lock:
            _starting[key] = _starting.get(key, 0) + 1
            try:
                return self._ensure()
            except BaseException:
                self._done(key)
                raise

    def release_start(self) -> None:
        with _lock:
            self._done((self.layout_root, self.name))

    @staticmethod
    def _done(key) -> None:
        _starting[key] -= 1
        if not _starting[key]:
            del _starting[key]

    def _ensure(self) -> dict:
        nets = self._networks()
        net = nets.load(self.name)
        if net is None:
            try:
                net = nets.create(self.name, labels={names.HUB: self.name})
            except errors.Conflict:
                net = nets.load(self.name)
        if net is None or (net.get("labels") or {}).get(names.HUB) != self.name:
            raise errors.Conflict(f"network {self.name} exists and was not made by the JupyterHub spawner: "
                                  "choose another JupyboxSpawner.network_name")
        firewall.apply(self.layout_root, net, self.ports)
        return net

    def remove_if_unused(self, in_use: Callable[[], bool]) -> bool:
        """After a stop: remove the network and its firewall when no server of this hub is left
        (``in_use()`` says whether a container of the hub still exists) and no start is under way."""
        key = (self.layout_root, self.name)
        with _lock:
            if _starting.get(key) or in_use():
                return False
            try:
                self._networks().remove(self.name)
            except errors.NotFound:
                pass
            except errors.Conflict:
                return False  # a container still attached (made by another process)
            firewall.remove(self.layout_root, self.name)
            return True
