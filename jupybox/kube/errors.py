"""Errors of ``jupybox kube``: one line, ``FILE:LINE: key: message`` when a manifest is at fault."""

from __future__ import annotations

from ..compose.errors import ComposeError


class KubeError(ComposeError):
    """A manifest or a source that cannot be used (podman's kube verbs exit 125 for these)."""

    exit_code = 125
