"""Registry authentication: challenges, credentials, tokens.

* :func:`parse_www_authenticate` reads ``WWW-Authenticate`` (RFC 7235): one or
  more challenges, each a scheme and its parameters.
* :class:`Credentials` is what a user gave (``username``/``password``, or an
  ``identitytoken`` from an OAuth2 login).
* :class:`AuthFile` reads and writes docker's ``config.json`` ``"auths"``
  section (``{"auths": {"host": {"auth": base64("user:pass")}}}``), the file
  that ``docker login``, ``podman login --authfile`` and ``skopeo`` share.
* :class:`Authenticator` answers a 401: anonymous first, then Basic, or a
  Bearer token fetched from the challenge's realm for a service and scope, and
  cached per scope until it expires.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AuthError, RegistryError
from ..image.blobs import renamed_into_place

DOCKER_HUB = "docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

__all__ = [
    "Challenge",
    "Credentials",
    "AuthFile",
    "Authenticator",
    "parse_www_authenticate",
    "default_authfile",
    "normalize_registry",
    "scope_for",
]


# ---------------------------------------------------------------- challenges

@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: dict

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM_RE = re.compile(rf"\s*({_TOKEN})\s*=\s*({_QUOTED}|{_TOKEN}=*)\s*")
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_www_authenticate(value: str | list[str] | None) -> list[Challenge]:
    """``Bearer realm="https://auth/token",service="reg",scope="repository:x:pull"`` →
    ``[Challenge("bearer", {...})]``. Several challenges (comma-separated, or in
    several headers) are all returned; malformed text ends the parse quietly."""
    if not value:
        return []
    if isinstance(value, list):
        out: list[Challenge] = []
        for v in value:
            out.extend(parse_www_authenticate(v))
        return out
    text = value
    pos = 0
    out = []
    while pos < len(text):
        while pos < len(text) and text[pos] in " ,\t":
            pos += 1
        m = _SCHEME_RE.match(text, pos)
        if not m:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        # token68 form (e.g. "Negotiate abc==") - keep it as a parameter
        m68 = re.match(r"([A-Za-z0-9\-._~+/]+=*)\s*(?:,|$)", text[pos:])
        if m68 and not _PARAM_RE.match(text, pos):
            params["token68"] = m68.group(1)
            pos += m68.end()
        while pos < len(text):
            pm = _PARAM_RE.match(text, pos)
            if not pm:
                break
            key, val = pm.group(1).lower(), pm.group(2)
            if val.startswith('"'):
                val = re.sub(r"\\(.)", r"\1", val[1:-1])
            params[key] = val
            pos = pm.end()
            if pos < len(text) and text[pos] == ",":
                # a comma ends this parameter; the next thing is a parameter or a new scheme
                nxt = _PARAM_RE.match(text, pos + 1)
                if nxt:
                    pos += 1
                    continue
                pos += 1
                break
        out.append(Challenge(scheme, params))
    return out


# --------------------------------------------------------------- credentials

@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identitytoken: str = ""  # an OAuth2 refresh token (docker's "identitytoken")

    def __bool__(self) -> bool:
        return bool(self.username or self.identitytoken)

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, password={'***' if self.password else ''!r})"


def normalize_registry(host: str) -> str:
    """``https://index.docker.io/v1/`` → ``docker.io``; ``http://h:5000/`` → ``h:5000``."""
    h = host.strip()
    if "://" in h:
        h = h.split("://", 1)[1]
    h = h.split("/", 1)[0].lower()
    if h in _HUB_ALIASES:
        return DOCKER_HUB
    return h


def default_authfile() -> Path:
    """Where credentials live: ``$REGISTRY_AUTH_FILE`` (podman/skopeo), else
    ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return Path(env)
    d = os.environ.get("DOCKER_CONFIG")
    if d:
        return Path(d) / "config.json"
    return Path(os.path.expanduser("~")) / ".docker" / "config.json"


class AuthFile:
    """docker's ``config.json``: only the ``"auths"`` entries are touched; every
    other key (credHelpers, proxies, ...) is kept as it was."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_authfile()

    def _read(self) -> dict:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise AuthError(f"cannot read {self.path}: {e.strerror}") from None
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as e:
            raise AuthError(f"{self.path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise AuthError(f"{self.path} is not a JSON object")
        return data

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=str(self.path.parent))
        with renamed_into_place(tmp, self.path), os.fdopen(fd, "w") as f:
            os.fchmod(fd, 0o600)
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    def _find_key(self, auths: dict, registry: str) -> str | None:
        want = normalize_registry(registry)
        if want in auths:
            return want
        for key in auths:
            if normalize_registry(key) == want:
                return key
        return None

    def get(self, registry: str) -> Credentials | None:
        auths = self._read().get("auths") or {}
        key = self._find_key(auths, registry)
        if key is None:
            return None
        entry = auths[key] or {}
        user, pw = entry.get("username", ""), entry.get("password", "")
        if entry.get("auth"):
            try:
                raw = base64.b64decode(entry["auth"]).decode()
            except (ValueError, UnicodeDecodeError):
                raise AuthError(f"{self.path}: the auth entry for {key} is not valid base64") from None
            if ":" not in raw:
                raise AuthError(f"{self.path}: the auth entry for {key} is not user:password")
            user, _, pw = raw.partition(":")
        creds = Credentials(user, pw, entry.get("identitytoken", ""))
        return creds if creds else None

    def set(self, registry: str, creds: Credentials) -> None:
        data = self._read()
        auths = data.setdefault("auths", {})
        key = self._find_key(auths, registry) or _auth_key(registry)
        entry: dict = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
        if creds.identitytoken:
            entry = {"identitytoken": creds.identitytoken}
            if creds.username:
                entry["auth"] = base64.b64encode(f"{creds.username}:".encode()).decode()
        auths[key] = entry
        self._write(data)

    def remove(self, registry: str) -> bool:
        data = self._read()
        auths = data.get("auths") or {}
        key = self._find_key(auths, registry)
        if key is None:
            return False
        del auths[key]
        self._write(data)
        return True


def _auth_key(registry: str) -> str:
    r = normalize_registry(registry)
    return DOCKER_HUB_AUTH_KEY if r == DOCKER_HUB else r


# -------------------------------------------------------------------- scopes

def scope_for(repository: str, actions: str = "pull") -> str:
    """``repository:NAME:pull`` (or ``pull,push``)."""
    return f"repository:{repository}:{actions}"


def _merge_scopes(*scopes: str | None) -> tuple[str, ...]:
    """Scopes as a sorted tuple, merging the actions of the same resource."""
    merged: dict[str, set[str]] = {}
    order: list[str] = []
    for s in scopes:
        if not s:
            continue
        for one in s.split(" "):
            if not one:
                continue
            res, _, actions = one.rpartition(":")
            if not res:
                res, actions = one, ""
            if res not in merged:
                merged[res] = set()
                order.append(res)
            merged[res].update(a for a in actions.split(",") if a)
    return tuple(sorted(f"{r}:{','.join(sorted(merged[r]))}" if merged[r] else r for r in order))


# ------------------------------------------------------------- authenticator

@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Authorization for one registry, shared by the threads of a pull/push.

    ``authorize(request_headers, scope)`` adds what is already known (a cached
    token for the scope, or Basic once the registry asked for it);
    ``handle_challenge(response, scope)`` learns from a 401 and returns True
    when the request is worth sending again. ``fetch`` performs the token
    request (``(method, url, headers, body) -> (status, headers, bytes)``)
    through the client's transport.
    """

    def __init__(self, registry: str, credentials: Credentials | None = None,
                 fetch: Callable | None = None):
        self.registry = registry
        self.credentials = credentials or None
        self.fetch = fetch
        self.clock = time.monotonic  # replaceable in tests
        self._lock = threading.Lock()
        self._scheme: str | None = None  # "basic" / "bearer" once a challenge was seen
        self._bearer: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._fetching: dict[tuple[str, ...], threading.Lock] = {}

    # what to send before any challenge
    def authorize(self, headers, scope: str | None) -> None:
        if self._scheme == "basic" and self.credentials:
            headers["Authorization"] = self._basic_header()
        elif self._scheme == "bearer":
            tok = self._cached(_merge_scopes(scope))
            if tok:
                headers["Authorization"] = f"Bearer {tok}"

    def _basic_header(self) -> str:
        c = self.credentials
        raw = f"{c.username}:{c.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _cached(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            t = self._tokens.get(key)
            if t and t.expires > self.clock() + 5:
                return t.value
            return None

    def handle_challenge(self, response, scope: str | None, sent_authorization: str | None) -> bool:
        challenges = parse_www_authenticate(response.headers.get_all("WWW-Authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None:
            key = _merge_scopes(scope, bearer.params.get("scope"))
            with self._lock:
                self._scheme = "bearer"
                self._bearer = bearer
                tok = self._tokens.get(key)
                if tok and tok.expires > self.clock() + 5 and sent_authorization != f"Bearer {tok.value}":
                    return True  # another thread already fetched a fresh one: send again with it
                self._tokens.pop(key, None)  # refused or expired: fetch a new one
            self._fetch_token(bearer, key)
            return True
        if basic is not None:
            if not self.credentials:
                raise AuthError(f"{self.registry}: 401 authentication required (log in with: jupybox login {self.registry})")
            if sent_authorization and sent_authorization.startswith("Basic "):
                raise AuthError(f"{self.registry}: 401 unauthorized: wrong username or password")
            self._scheme = "basic"
            return True
        if not challenges:
            raise AuthError(f"{self.registry}: unauthorized (401 without a WWW-Authenticate challenge)")
        raise AuthError(f"{self.registry}: unsupported authentication scheme {challenges[0].scheme!r}")

    def authorization_for(self, scope: str | None) -> str | None:
        """The Authorization header value for ``scope`` as things stand."""
        h: dict[str, str] = {}
        self.authorize(h, scope)
        return h.get("Authorization")

    def _fetch_token(self, ch: Challenge, key: tuple[str, ...]) -> str:
        with self._lock:
            lock = self._fetching.setdefault(key, threading.Lock())
        with lock:  # one token request per scope, however many threads need it
            cached = self._cached(key)
            if cached:
                return cached
            realm = ch.params.get("realm")
            if not realm:
                raise AuthError(f"{self.registry}: Bearer challenge without a realm")
            if self.fetch is None:
                raise AuthError(f"{self.registry}: cannot fetch a token (no transport)")
            service = ch.params.get("service")
            c = self.credentials
            if c and c.identitytoken:
                form = {"grant_type": "refresh_token", "refresh_token": c.identitytoken,
                        "client_id": "jupybox"}
                if service:
                    form["service"] = service
                if key:
                    form["scope"] = " ".join(key)
                body = urllib.parse.urlencode(form).encode()
                status, headers, data = self.fetch(
                    "POST", realm, {"Content-Type": "application/x-www-form-urlencoded"}, body)
            else:
                q = []
                if service:
                    q.append(("service", service))
                for s in key:
                    q.append(("scope", s))
                if c:
                    q.append(("account", c.username))
                url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(q) if q else realm
                headers = {"Authorization": self._basic_header()} if c else {}
                status, headers, data = self.fetch("GET", url, headers, None)
            if status in (401, 403):
                if c:
                    raise AuthError(f"{self.registry}: 401 unauthorized: wrong username or password")
                raise AuthError(f"{self.registry}: 401 authentication required (log in with: jupybox login {self.registry})")
            if status != 200:
                raise AuthError(f"{self.registry}: token server {realm} answered {status}")
            try:
                doc = json.loads(data)
                token = doc.get("token") or doc.get("access_token")
            except (ValueError, AttributeError):
                token = None
            if not token:
                raise AuthError(f"{self.registry}: token server {realm} sent no token")
            try:
                ttl = int(doc.get("expires_in") or 60)
            except (TypeError, ValueError):
                ttl = 60
            with self._lock:
                self._tokens[key] = _Token(token, self.clock() + max(ttl, 10))
            return token


def resolve_credentials(registry: str, auth=None, authfile: str | os.PathLike | None = None) -> Credentials | None:
    """``auth`` may be Credentials, a ``(user, password)`` pair, ``"user:password"``,
    or None (look the registry up in ``authfile``, the default file if None)."""
    if isinstance(auth, Credentials):
        return auth or None
    if isinstance(auth, tuple) and len(auth) == 2:
        return Credentials(str(auth[0]), str(auth[1]))
    if isinstance(auth, str):
        if ":" not in auth:
            raise AuthError("credentials must be user:password")
        u, _, p = auth.partition(":")
        return Credentials(u, p)
    if auth is False:
        return None
    if auth is not None:
        raise RegistryError(f"unsupported auth value of type {type(auth).__name__}")
    return AuthFile(authfile).get(registry)
