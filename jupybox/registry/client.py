"""A client for the distribution (registry v2) HTTP API.

One :class:`RegistryClient` talks to one registry and may be shared by
threads (each thread gets its own keep-alive connection from the transport).
Everything that goes wrong becomes a one-line :class:`~jupybox.errors.RegistryError`
(or :class:`~jupybox.errors.AuthError`, :class:`~jupybox.errors.DigestMismatch`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import AuthError, DigestMismatch, ImageNotFound, RegistryError
from . import mediatypes as mt
from .auth import DOCKER_HUB, Authenticator, normalize_registry, resolve_credentials, scope_for
from .readers import CountingReader, LimitedReader
from .transport import (CHUNK, HTTPTransport, Request, Response, Transport, TransportError, is_insecure_host,
                        send_with_retries)

__all__ = ["RegistryClient", "Manifest", "ManifestUnknown", "BlobUnknown", "Cancelled", "check_digest",
           "DEFAULT_CHUNK_SIZE"]

USER_AGENT = "jupybox/0.1 (python http.client)"
MAX_MANIFEST = 4 << 20  # like containerd: a manifest larger than this is refused
DEFAULT_CHUNK_SIZE = 64 << 20  # blobs larger than this are sent with several PATCH requests
_REDIRECTS = (301, 302, 303, 307, 308)


class ManifestUnknown(RegistryError, ImageNotFound):
    """The registry has no manifest for that tag or digest (404)."""


class BlobUnknown(RegistryError):
    """The registry has no such blob (404)."""


class Cancelled(RegistryError):
    """Another part of the same operation failed first."""


@dataclass
class Manifest:
    data: bytes
    media_type: str
    digest: str

    def json(self) -> dict:
        return json.loads(self.data)


_ALGOS = {"sha256": 64, "sha512": 128}


def check_digest(digest: str) -> tuple[str, str]:
    """``sha256:<64 hex>`` → ("sha256", hex); anything else is a RegistryError."""
    if not isinstance(digest, str) or ":" not in digest:
        raise RegistryError(f"invalid digest {digest!r}")
    algo, _, hexpart = digest.partition(":")
    n = _ALGOS.get(algo)
    if n is None:
        raise RegistryError(f"unsupported digest algorithm in {digest!r}")
    if len(hexpart) != n or any(c not in "0123456789abcdef" for c in hexpart):
        raise RegistryError(f"invalid digest {digest!r}")
    return algo, hexpart


def _hasher(digest: str):
    algo, _ = check_digest(digest)
    return hashlib.new(algo)


class RegistryClient:
    """The v2 API of one registry.

    ``registry`` is a host (``127.0.0.1:5000``, ``ghcr.io``, ``docker.io``).
    ``auth`` is Credentials, ``(user, password)``, ``"user:password"``, False
    (anonymous), or None to look the registry up in ``authfile`` (docker's
    ``config.json``). Plain http is used for localhost/127.0.0.0/8, for the
    hosts in ``insecure_registries``, or when ``insecure=True``; https else.
    """

    def __init__(self, registry: str, *, auth=None, authfile: str | os.PathLike | None = None,
                 transport: Transport | None = None, insecure_registries: Iterable[str] = (),
                 insecure: bool | None = None, retries: int = 3, backoff: float = 0.25,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, sleep: Callable[[float], None] | None = None):
        self.registry = normalize_registry(registry)
        host = "registry-1.docker.io" if self.registry == DOCKER_HUB else self.registry
        if insecure is None:
            from .transport import env_insecure_registries
            insecure = is_insecure_host(host, list(insecure_registries) + env_insecure_registries())
        self.scheme = "http" if insecure else "https"
        self.host = host
        self.base = f"{self.scheme}://{host}"
        self._own_transport = transport is None
        self.transport = transport or HTTPTransport()
        self.retries = retries
        self.backoff = backoff
        self.chunk_size = chunk_size
        self._sleep = sleep
        creds = resolve_credentials(self.registry, auth, authfile)
        self.auth = Authenticator(self.registry, creds, fetch=self._fetch_token)

    # ------------------------------------------------------------ plumbing

    def close(self) -> None:
        if self._own_transport:
            self.transport.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _retry_kw(self) -> dict:
        kw = {"retries": self.retries, "backoff": self.backoff}
        if self._sleep is not None:
            kw["sleep"] = self._sleep
        return kw

    def _fetch_token(self, method, url, headers, body):
        h = {"User-Agent": USER_AGENT, **headers}
        if body is not None:
            h["Content-Length"] = str(len(body))
        resp = send_with_retries(self.transport, Request(method, url, h, body), **self._retry_kw())
        with resp:
            return resp.status, resp.headers, resp.read(1 << 20)

    def url(self, path: str) -> str:
        return self.base + path

    def request(self, method: str, url: str, *, scope: str | None, headers: dict | None = None,
                body=None, follow_redirects: bool = False) -> Response:
        """Send with auth (answering at most two challenges) and retries;
        optionally follow redirects (without sending credentials to another host)."""
        if not url.startswith(("http://", "https://")):
            url = self.url(url)
        body_start = body.tell() if body is not None and hasattr(body, "seek") and hasattr(body, "tell") else None
        auth_rounds = 0
        redirects = 0
        while True:
            h = {"User-Agent": USER_AGENT}
            if headers:
                h.update(headers)
            same_host = urllib.parse.urlsplit(url).netloc == self.host
            if same_host:
                self.auth.authorize(h, scope)
            req = Request(method, url, h, body)
            resp = send_with_retries(self.transport, req, **self._retry_kw())
            if resp.status == 401 and same_host:
                resp.close()
                if auth_rounds >= 2:
                    raise AuthError(f"{self.registry}: unauthorized: {method} {urllib.parse.urlsplit(url).path}")
                auth_rounds += 1
                self.auth.handle_challenge(resp, scope, req.headers.get("Authorization"))
                if body_start is not None:
                    body.seek(body_start)
                continue
            if follow_redirects and resp.status in _REDIRECTS and resp.headers.get("Location"):
                resp.close()
                redirects += 1
                if redirects > 5:
                    raise RegistryError(f"{self.registry}: too many redirects for {method} {url}")
                url = urllib.parse.urljoin(url, resp.headers["Location"])
                if resp.status == 303:
                    method, body = "GET", None
                continue
            return resp

    def _fail(self, resp: Response, what: str, not_found: type[RegistryError] | None = None) -> RegistryError:
        """A one-line error from an unexpected answer (reads the distribution error body)."""
        try:
            data = resp.read(65536)
        except RegistryError:
            data = b""
        finally:
            resp.close()
        detail = ""
        code = ""
        try:
            errs = json.loads(data).get("errors") or []
            if errs:
                code = errs[0].get("code") or ""
                detail = errs[0].get("message") or ""
        except (ValueError, AttributeError):
            text = data.decode("utf-8", "replace").strip().splitlines()
            detail = text[0][:200] if text else ""
        status = resp.status
        msg = f"{what}: {status} {resp.reason}".rstrip()
        if detail:
            msg += f": {detail}"
        if code and code.lower().replace("_", " ") not in detail.lower():
            msg += f" ({code})"
        if status == 404 and not_found is not None:
            return not_found(msg)
        if status == 403 or code == "DENIED":
            return AuthError(msg)
        if status == 401:
            return AuthError(msg)
        return RegistryError(msg)

    def _name(self, repo: str) -> str:
        return f"{self.registry}/{repo}"

    # ----------------------------------------------------------------- API

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks v2 and the credentials (if any) work."""
        resp = self.request("GET", "/v2/", scope=None)
        with resp:
            if resp.status != 200:
                raise self._fail(resp, f"{self.registry}: ping /v2/")
            resp.read()

    def check_login(self) -> None:
        """Verify the credentials the way ``docker login`` does: ``/v2/`` must
        answer 200 with them (for a token registry: a token must be granted)."""
        if not self.auth.credentials:
            raise AuthError(f"{self.registry}: no credentials given")
        self.ping()  # a registry that lets everyone in accepts any credentials, as with docker login

    def list_tags(self, repo: str) -> list[str]:
        resp = self.request("GET", f"/v2/{repo}/tags/list", scope=scope_for(repo))
        if resp.status != 200:
            raise self._fail(resp, f"list tags of {self._name(repo)}", ManifestUnknown)
        return list(json.loads(resp.content).get("tags") or [])

    def get_manifest(self, repo: str, reference: str, accept: Iterable[str] = mt.ACCEPT_MANIFESTS,
                     scope: str | None = None) -> Manifest:
        """The manifest bytes exactly as served (their digest is the image's
        identity); verified against ``reference`` when it is a digest."""
        what = f"manifest {self._name(repo)}{'@' if ':' in reference else ':'}{reference}"
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", scope=scope or scope_for(repo),
                            headers={"Accept": ", ".join(accept)})
        if resp.status != 200:
            raise self._fail(resp, what, ManifestUnknown)
        with resp:
            n = resp.headers.get("Content-Length")
            if n is not None and n.isdigit() and int(n) > MAX_MANIFEST:
                raise RegistryError(f"{what}: too large ({n} bytes)")
            data = resp.read(MAX_MANIFEST + 1)
            if len(data) > MAX_MANIFEST:
                raise RegistryError(f"{what}: too large")
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise RegistryError(f"{what}: malformed manifest JSON ({e})") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"{what}: malformed manifest (not a JSON object)")
        media_type = doc.get("mediaType") or ctype
        if media_type in ("", "application/json", "text/plain") and doc.get("schemaVersion") == 2:
            media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
        if ":" in reference:
            algo, _ = check_digest(reference)
            digest = f"{algo}:{hashlib.new(algo, data).hexdigest()}"
            if digest != reference:
                raise DigestMismatch(f"{what}: content has digest {digest}")
        else:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            served = resp.headers.get("Docker-Content-Digest")
            if served and served.startswith("sha256:") and served != digest:
                raise DigestMismatch(f"{what}: served digest {served} but content has digest {digest}")
        return Manifest(data, media_type, digest)

    def head_manifest(self, repo: str, reference: str, accept: Iterable[str] = mt.ACCEPT_MANIFESTS) -> str | None:
        """The digest of a tag (from ``Docker-Content-Digest``) or None if unknown."""
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{reference}", scope=scope_for(repo),
                            headers={"Accept": ", ".join(accept)})
        with resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise self._fail(resp, f"manifest {self._name(repo)}:{reference}")
            return resp.headers.get("Docker-Content-Digest")

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = self.request("PUT", f"/v2/{repo}/manifests/{reference}", scope=scope_for(repo, "pull,push"),
                            headers={"Content-Type": media_type}, body=data)
        with resp:
            if resp.status not in (200, 201, 202):
                raise self._fail(resp, f"put manifest {self._name(repo)}:{reference}")
            resp.read()
            served = resp.headers.get("Docker-Content-Digest")
        if served and served != digest:
            raise DigestMismatch(f"put manifest {self._name(repo)}:{reference}: registry computed {served}, "
                                 f"expected {digest}")
        return digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        resp = self.request("DELETE", f"/v2/{repo}/manifests/{digest}", scope=scope_for(repo, "*"))
        with resp:
            if resp.status not in (200, 202):
                raise self._fail(resp, f"delete manifest {self._name(repo)}@{digest}", ManifestUnknown)

    def blob_size(self, repo: str, digest: str, scope: str | None = None) -> int | None:
        """HEAD a blob: its size, or None when the registry does not have it."""
        check_digest(digest)
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope or scope_for(repo),
                            follow_redirects=True)
        with resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise self._fail(resp, f"blob {digest} in {self._name(repo)}")
            n = resp.headers.get("Content-Length")
            return int(n) if n and n.isdigit() else -1

    def get_blob(self, repo: str, digest: str, max_size: int = 64 << 20) -> bytes:
        """A small blob (a config) into memory, verified."""
        buf = io.BytesIO()
        self.download_blob(repo, digest, buf, max_size=max_size)
        return buf.getvalue()

    def download_blob(self, repo: str, digest: str, sink, *, size: int | None = None,
                      progress: Callable[[int], None] | None = None, cancel: threading.Event | None = None,
                      max_size: int | None = None) -> int:
        """Stream a blob into ``sink.write``, hashing while it streams; a wrong
        size or digest raises (DigestMismatch) before the caller commits
        anything. A connection dropped mid-body is resumed with a Range request
        (bounded by the retry count). ``progress(n)`` gets each chunk's length."""
        h = _hasher(digest)
        what = f"blob {digest} of {self._name(repo)}"
        done = 0
        resumes = 0
        limit = size if size is not None else max_size
        while True:
            headers = {"Range": f"bytes={done}-"} if done else None
            resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=scope_for(repo), headers=headers,
                                follow_redirects=True)
            if resp.status not in (200, 206):
                raise self._fail(resp, what, BlobUnknown)
            skip = done if (done and resp.status == 200) else 0  # no Range support: skip what we have
            if not done:
                n = resp.headers.get("Content-Length")
                if size is not None and n is not None and n.isdigit() and int(n) != size:
                    resp.close()
                    raise DigestMismatch(f"{what}: registry sends {n} bytes, the manifest says {size}")
            try:
                with resp:
                    while True:
                        if cancel is not None and cancel.is_set():
                            raise Cancelled(f"{what}: cancelled")
                        chunk = resp.read(CHUNK)
                        if not chunk:
                            break
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk = chunk[skip:]
                            skip = 0
                        done += len(chunk)
                        if limit is not None and done > limit:
                            raise DigestMismatch(f"{what}: more than the {limit} bytes expected")
                        h.update(chunk)
                        sink.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except TransportError:
                resumes += 1
                if resumes > self.retries:
                    raise
                if self._sleep:
                    self._sleep(self.backoff)
                continue
            break
        if size is not None and done != size:
            raise DigestMismatch(f"{what}: got {done} bytes, the manifest says {size}")
        got = f"{h.name}:{h.hexdigest()}"
        if got != digest:
            raise DigestMismatch(f"{what}: content has digest {got}")
        return done

    # ------------------------------------------------------------- uploads

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> str | None:
        """Cross-repository mount; True when mounted (201). On 202 the registry
        opened an upload instead: its Location is returned for the caller to use."""
        check_digest(digest)
        scope = " ".join([scope_for(repo, "pull,push"), scope_for(from_repo, "pull")])
        q = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", scope=scope)
        with resp:
            resp.read()
            if resp.status == 201:
                return "mounted"
            if resp.status == 202 and resp.headers.get("Location"):
                return urllib.parse.urljoin(self.base + "/", resp.headers["Location"])
            raise self._fail(resp, f"mount {digest} from {self._name(from_repo)} into {repo}")

    def start_upload(self, repo: str) -> str:
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope_for(repo, "pull,push"))
        with resp:
            if resp.status != 202 or not resp.headers.get("Location"):
                raise self._fail(resp, f"start upload to {self._name(repo)}")
            resp.read()
            return urllib.parse.urljoin(self.base + "/", resp.headers["Location"])

    def upload_blob(self, repo: str, digest: str, size: int, source, *, chunk_size: int | None = None,
                    progress: Callable[[int], None] | None = None, location: str | None = None) -> None:
        """Upload ``source`` (bytes, a path, or a seekable binary file) as
        ``digest``: one ``PUT ?digest=`` with the body when ``size <=
        chunk_size`` (the monolithic upload), else ``PATCH`` chunks of
        ``chunk_size`` with ``Content-Range`` then an empty ``PUT ?digest=``."""
        check_digest(digest)
        chunk_size = chunk_size or self.chunk_size
        scope = scope_for(repo, "pull,push")
        what = f"upload {digest} to {self._name(repo)}"
        close = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            f = io.BytesIO(bytes(source))
        elif isinstance(source, (str, os.PathLike)):
            f = close = open(source, "rb")
        else:
            f = source
        try:
            loc = location or self.start_upload(repo)
            if size <= chunk_size:
                body = CountingReader(f, progress) if progress else f
                resp = self.request("PUT", _add_query(loc, digest=digest), scope=scope,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Length": str(size)}, body=body)
            else:
                offset = 0
                while offset < size:
                    n = min(chunk_size, size - offset)
                    body = LimitedReader(f, n, progress)
                    resp = self.request("PATCH", loc, scope=scope, body=body,
                                        headers={"Content-Type": "application/octet-stream",
                                                 "Content-Length": str(n),
                                                 "Content-Range": f"{offset}-{offset + n - 1}"})
                    with resp:
                        if resp.status != 202:
                            raise self._fail(resp, f"{what} (chunk at {offset})")
                        resp.read()
                        if resp.headers.get("Location"):
                            loc = urllib.parse.urljoin(loc, resp.headers["Location"])
                        rng = resp.headers.get("Range")
                    offset += n
                    if rng and rng.partition("-")[2].isdigit() and int(rng.partition("-")[2]) != offset - 1:
                        raise RegistryError(f"{what}: registry has bytes {rng}, sent up to {offset - 1}")
                resp = self.request("PUT", _add_query(loc, digest=digest), scope=scope,
                                    headers={"Content-Length": "0"})
            with resp:
                if resp.status not in (201, 204):
                    if resp.status == 400:
                        err = self._fail(resp, what)
                        if "DIGEST_INVALID" in str(err) or "digest" in str(err).lower():
                            raise DigestMismatch(str(err))
                        raise err
                    raise self._fail(resp, what)
                resp.read()
        finally:
            if close is not None:
                close.close()


def _add_query(url: str, **params) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
