"""One exception hierarchy for all of jupybox.

Every error a user can cause is a :class:`JupyboxError` with a one-line message.
Exit codes are chosen only at the CLI edge (``jupybox.cli``), from ``exit_code``,
which follows docker's conventions: 125 for jupybox's own errors, 126 for a
command that cannot be executed, 127 for a command that is not found.
"""

from __future__ import annotations


class JupyboxError(Exception):
    """Base class: a clear, one-line message for the user."""

    exit_code = 125

    def __str__(self) -> str:  # keep messages on one line
        return " ".join(str(a) for a in self.args).replace("\n", " ").strip()


class UsageError(JupyboxError):
    """Bad arguments: unknown flag, malformed size, missing value."""


class InvalidSize(UsageError):
    pass


class NotFound(JupyboxError):
    """Something named by the user does not exist."""


class ImageNotFound(NotFound):
    pass


class ContainerNotFound(NotFound):
    pass


class VolumeNotFound(NotFound):
    pass


class Conflict(JupyboxError):
    """A name already in use, an image still used by a container, a container still running."""


class StateError(JupyboxError):
    """An operation that the container's current state does not allow."""


class StoreError(JupyboxError):
    """The image store is damaged or an archive/blob is invalid."""


class NoSpace(StoreError):
    """The store's (or an output's) file system is full: nothing was half-written."""


class DigestMismatch(StoreError):
    pass


class UnsafeArchive(StoreError):
    """A tar member tried to escape its directory, or another hostile archive trick."""


class RuntimeFailure(JupyboxError):
    """The container could not be set up (a mount, a namespace, a cgroup failed)."""


class CommandNotFound(RuntimeFailure):
    exit_code = 127


class CommandNotExecutable(RuntimeFailure):
    exit_code = 126


class CgroupError(RuntimeFailure):
    pass


class RegistryError(JupyboxError):
    pass


class AuthError(RegistryError):
    pass


class BuildError(JupyboxError):
    """A Dockerfile error; the message starts with FILE:LINE."""

    exit_code = 1


class ContainerError(JupyboxError):
    """The container's command exited non-zero (raised by the notebook layer and the API when asked)."""

    def __init__(self, message: str, exit_code: int = 1, container=None):
        super().__init__(message)
        self.exit_code = exit_code
        self.container = container


class ContainerOOMError(ContainerError):
    """The container was killed by the kernel's OOM killer at its memory limit."""

    def __init__(self, message: str, exit_code: int = 137, container=None, limit=None, peak=None):
        super().__init__(message, exit_code, container)
        self.limit = limit
        self.peak = peak
