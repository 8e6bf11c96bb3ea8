"""JupyterHub on jupybox: each user's notebook server in a container of its own, no Docker daemon.

    spawner.py   JupyboxSpawner (entry point ``jupyterhub.spawners: jupybox``)
    profiles.py  the images and limits users may choose on the spawn page
    network.py   the hub's bridge network, made on first use, removed after the last server
    firewall.py  what a server may reach: the hub's API, not the host, not another server
    names.py     escaped names and the labels that find a server again after a hub restart
    testing.py   a real hub, proxy and browser for tests and benchmarks (in a network namespace)

Only ``spawner`` imports jupyterhub.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "JupyboxSpawner":
        from .spawner import JupyboxSpawner

        return JupyboxSpawner
    raise AttributeError(name)


__all__ = ["JupyboxSpawner"]
