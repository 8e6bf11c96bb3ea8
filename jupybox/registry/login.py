"""``login`` / ``logout``: check credentials against a registry, keep them in docker's config.json."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import AuthError
from .auth import AuthFile, Credentials, normalize_registry
from .client import RegistryClient

__all__ = ["login", "logout"]


def login(registry: str, username: str, password: str, *, authfile: str | os.PathLike | None = None,
          transport=None, insecure_registries: Iterable[str] = (), verify: bool = True) -> Path:
    """Verify ``username``/``password`` against ``registry`` (``GET /v2/``, answering
    its Basic or Bearer challenge) and store them, base64 in the ``auth`` field,
    in ``authfile`` (default ``~/.docker/config.json``; written 0600, atomically).
    Wrong credentials raise AuthError and leave the file as it was. Returns the file."""
    if not username:
        raise AuthError("login: a username is required")
    if not password:
        raise AuthError("login: a password is required")
    creds = Credentials(username, password)
    if verify:
        with RegistryClient(registry, auth=creds, transport=transport,
                            insecure_registries=insecure_registries) as client:
            client.check_login()
    f = AuthFile(authfile)
    f.set(normalize_registry(registry) if "://" in registry else registry, creds)
    return f.path


def logout(registry: str, *, authfile: str | os.PathLike | None = None) -> bool:
    """Remove the entry for ``registry``; False when there was none (like docker,
    which then prints "Not logged in to REGISTRY")."""
    return AuthFile(authfile).remove(registry)
