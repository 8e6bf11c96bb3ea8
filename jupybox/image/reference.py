"""Image references: ``[registry[:port]/]repo[:tag][@sha256:...]``, normalized like docker.

Normalization (the same as docker's ``ParseNormalizedNamed`` + ``TagNameOnly``):

* the first path component is a registry only if it contains ``.`` or ``:`` or is
  ``localhost`` (or has an uppercase letter); otherwise the registry is ``docker.io``;
* ``index.docker.io`` is spelled ``docker.io``;
* on ``docker.io`` a one-component repository gets the ``library/`` prefix;
* a reference without tag and without digest gets the tag ``latest``.

So ``busybox`` → ``docker.io/library/busybox:latest``, ``localhost:5000/x`` →
``localhost:5000/x:latest``, and a bare local name such as ``myimg`` is
``docker.io/library/myimg:latest`` too (that is what docker does). The *familiar*
form, used for display (``RepoTags``, ``jupybox images``), strips ``docker.io/``
and ``library/`` again: ``busybox:latest``, ``localhost:5000/x:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of distribution/reference (regexp.go).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(r"^" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*$")
_DOMAIN_RE = re.compile(r"^" + _DOMAIN + r"$")
_TAG_RE = re.compile(r"^" + _TAG + r"$")
_DIGEST_RE = re.compile(r"^" + _DIGEST + r"$")
_ANCHORED_ID_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A normalized reference. ``str(ref)`` is the full form, ``ref.familiar()`` the short one."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``docker.io/library/busybox`` (no tag, no digest)."""
        return f"{self.domain}/{self.path}"

    @property
    def repository(self) -> str:
        """The path on the registry: ``library/busybox``."""
        return self.path

    def familiar_name(self) -> str:
        """``busybox``, ``user/app``, ``localhost:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in self.path[len(OFFICIAL_REPO_PREFIX):]:
                return self.path[len(OFFICIAL_REPO_PREFIX):]
            return self.path
        return self.name

    def _suffix(self) -> str:
        s = ""
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        """The display form: ``busybox:latest``, ``localhost:5000/x:1``, ``busybox@sha256:...``."""
        return self.familiar_name() + self._suffix()

    def __str__(self) -> str:
        return self.name + self._suffix()

    def with_tag(self, tag: str) -> "Reference":
        if not _TAG_RE.match(tag):
            raise UsageError(f"invalid reference format: invalid tag {tag!r}")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.domain, self.path, None, digest)

    @property
    def is_tagged(self) -> bool:
        return self.tag is not None

    @property
    def is_digested(self) -> bool:
        return self.digest is not None


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_REPO_PREFIX + rest
    return domain, rest


def parse_reference(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalize a reference; ``default_tag`` is added when neither tag nor digest is given
    (pass ``None`` to keep a bare name). Raises UsageError("invalid reference format...")."""
    if not isinstance(text, str):
        raise UsageError(f"invalid reference format: {text!r}")
    s = text.strip()
    if not s:
        raise UsageError("invalid reference format: empty reference")
    if _ANCHORED_ID_RE.match(s):
        raise UsageError(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    digest = None
    if "@" in s:
        s, _, digest = s.partition("@")
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"invalid reference format: invalid digest {digest!r}")
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and (len(hexpart) != 64 or hexpart.lower() != hexpart):
            raise UsageError(f"invalid reference format: invalid digest {digest!r}")
    domain, rest = _split_domain(s)
    tag = None
    # the tag is after the last ':' that is not followed by a '/' (a port lives in the domain part)
    colon = rest.rfind(":")
    if colon >= 0:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise UsageError(f"invalid reference format: {text!r}")
    if rest.lower() != rest:
        raise UsageError("invalid reference format: repository name must be lowercase")
    if not _PATH_RE.match(rest) or not _DOMAIN_RE.match(domain):
        raise UsageError(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(rest) > NAME_TOTAL_LENGTH_MAX:
        raise UsageError(
            f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if tag is None and digest is None and default_tag is not None:
        tag = default_tag
    return Reference(domain, rest, tag, digest)


def normalize(text: str) -> str:
    """The full normalized string: ``busybox`` → ``docker.io/library/busybox:latest``."""
    return str(parse_reference(text))


def familiar(text: str) -> str:
    """The display form of any reference string: ``docker.io/library/busybox:latest`` → ``busybox:latest``."""
    return parse_reference(text).familiar()


def is_valid_reference(text: str) -> bool:
    try:
        parse_reference(text)
        return True
    except UsageError:
        return False
