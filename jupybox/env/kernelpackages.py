"""``%pip install`` in a kernel that runs in a container.

In the ``host`` image the Python environment is the machine's own, bind-mounted read-only, so
``pip install`` fails on its site-packages. A kernel's container gets a writable *packages prefix*
instead, layered over the image's environment: the provisioner sets ``JUPYBOX_PACKAGES`` (the
prefix, ``/var/lib/jupybox-packages``, in the container's write layer: it lives as long as the
kernel) and, in the kernel, :func:`activate` (run by the kernel extension
``jupybox.jupyter.kernel_usage`` at start) makes the prefix's site-packages directory, puts it
first on ``sys.path`` and exports ``PIP_PREFIX``: pip (and IPython's ``%pip``, a pip subprocess)
installs there, sees what the image has (a requirement already in the image is satisfied), and
what it installs shadows the image's older versions. Its scripts go to ``PREFIX/bin``, on PATH.

``jupybox kernel install --persist-packages`` mounts a named volume there
(``jupybox-packages-<kernel name>``): the packages survive a restart of the kernel and a new
container (``jupybox volume rm`` forgets them).
"""

from __future__ import annotations

import os
import sys

PREFIX = "/var/lib/jupybox-packages"
ENV = "JUPYBOX_PACKAGES"


def volume_name(kernel_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in (kernel_name or "kernel"))
    return f"jupybox-packages-{safe}"


def kernel_env(settings: dict) -> dict[str, str]:
    """What the provisioner adds to the kernel's environment (nothing on a read-only root without a volume)."""
    if settings.get("read_only") and not settings.get("persist_packages"):
        return {}
    return {ENV: PREFIX}


def kernel_mounts(settings: dict, kernel_name: str) -> list:
    """The named volume of ``--persist-packages``."""
    if not settings.get("persist_packages"):
        return []
    from ..runtime.spec import Mount

    return [Mount(destination=PREFIX, source=volume_name(kernel_name), type="volume")]


def site_dir(prefix: str) -> str:
    """Where ``pip install --prefix PREFIX`` puts pure and platform packages for this interpreter."""
    import sysconfig

    scheme = "posix_prefix" if "posix_prefix" in sysconfig.get_scheme_names() else None
    return sysconfig.get_path("purelib", scheme, vars={"base": prefix, "platbase": prefix})


def activate() -> str | None:
    """In the kernel: the prefix made, first on sys.path, pip pointed at it. Returns its site dir."""
    prefix = os.environ.get(ENV)
    if not prefix:
        return None
    import site

    where = site_dir(prefix)
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return None  # a read-only root: %pip fails as it would anyway, with pip's own message
    before = list(sys.path)
    site.addsitedir(where)  # its .pth files too
    sys.path[:] = [where] + [p for p in sys.path if p != where and p in before] + \
        [p for p in sys.path if p not in before and p != where]
    os.environ["PIP_PREFIX"] = prefix
    bin_dir = os.path.join(prefix, "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return where
