"""The distribution (registry v2) client: pull, push, login, logout.

    from jupybox.registry import pull, push, login, logout
    image = pull(store, "127.0.0.1:5000/app:1")
    digest = push(store, "127.0.0.1:5000/app:2", source="app:1")

Transports are injectable (``transport=MockTransport(handler)``), like httpx.
"""

from __future__ import annotations

from .auth import AuthFile, Authenticator, Challenge, Credentials, default_authfile, parse_www_authenticate
from .client import BlobUnknown, Manifest, ManifestUnknown, RegistryClient
from .login import login, logout
from .progress import default_progress
from .pull import pull
from .push import push
from .transport import HTTPTransport, MockTransport, Request, Response, Transport, TransportError

__all__ = [
    "AuthFile",
    "Authenticator",
    "BlobUnknown",
    "Challenge",
    "Credentials",
    "HTTPTransport",
    "Manifest",
    "ManifestUnknown",
    "MockTransport",
    "RegistryClient",
    "Request",
    "Response",
    "Transport",
    "TransportError",
    "default_authfile",
    "default_progress",
    "login",
    "logout",
    "parse_www_authenticate",
    "pull",
    "push",
]
