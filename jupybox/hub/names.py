"""Names and labels of what the spawner makes: containers, home volumes, the hub's network.

A JupyterHub user name may hold any character; jupybox names allow ``[a-zA-Z0-9][a-zA-Z0-9_.-]``.
Names are escaped as DockerSpawner escapes them (escapism: lower-case letters and digits kept,
anything else ``-XX`` in hex, ``-`` itself included), so two users never share a name and the
volumes DockerSpawner made for a class keep their names when the class moves to jupybox.
"""

from __future__ import annotations

import string

from escapism import escape as _escape

SAFE = set(string.ascii_lowercase + string.digits)

# labels on every container (and the network) the spawner makes: found again after a hub restart
HUB = "org.jupyter.hub.network"  # the hub's network: which hub made it
USER = "org.jupyter.hub.user"
SERVER = "org.jupyter.hub.server"
VOLUME = "org.jupyter.hub.home"


def escape(text: str) -> str:
    return _escape(text, SAFE, escape_char="-").lower()


def expand(template: str, username: str, servername: str = "") -> str:
    """``{username}`` (escaped), ``{raw_username}``, ``{servername}`` (escaped, ``--`` in front
    when not empty, so ``jupyterhub-{username}{servername}`` names a named server apart)."""
    server = f"--{escape(servername)}" if servername else ""
    return template.format(username=escape(username), raw_username=username, servername=server)
