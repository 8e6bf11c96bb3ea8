"""docker's exit statuses for the verbs that are not ``run``.

docker's CLI exits 125 only where ``run`` (or ``create``) fails before the container's command; the
other verbs exit 1 for whatever their daemon refuses (no such container, image or object; not
running; in use), and 125 only for their own usage errors. ``tests/cli`` checks the table against
a private dockerd, verb by verb.
"""

from __future__ import annotations

import functools

from .. import errors


def docker_status(fn, *, usage_status: int = 1):
    """A verb whose errors exit 1, as docker's do; a full disk stays 125 (one line that names it)
    and a command that cannot run in ``exec`` 126/127. Usage errors exit ``usage_status``: 1 for
    the image verbs (docker's daemon checks a reference or a filter), 125 for the container verbs
    (docker's CLI checks their flags and templates itself)."""

    @functools.wraps(fn)
    def verb(args, ctx):
        from ..image.nospace import NoSpace

        try:
            return fn(args, ctx)
        except NoSpace:
            raise
        except errors.JupyboxError as e:
            if isinstance(e, errors.UsageError):
                e.exit_code = usage_status
            elif e.exit_code not in (126, 127):
                e.exit_code = 1
            raise

    return verb


def container_status(fn):
    return docker_status(fn, usage_status=125)
