"""jupybox: real Linux containers inside Jupyter.

The public API only; everything is imported on first use so that ``jupybox`` on the command
line and the store's service start fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "run": "api", "create": "api", "container": "api", "containers": "api", "images": "api", "image": "api",
    "volumes": "api", "prune": "api", "reset": "api", "engine": "api", "launcher": "api", "shutdown": "api",
    "Container": "runtime.container", "ContainerSpec": "runtime.spec", "Limits": "runtime.spec",
    "Mount": "runtime.spec", "make_spec": "runtime.options",
    "JupyboxError": "errors", "ContainerError": "errors", "ContainerOOMError": "errors",
    "ImageNotFound": "errors", "ContainerNotFound": "errors", "UsageError": "errors",
    "load_ipython_extension": "jupyter.magics", "unload_ipython_extension": "jupyter.magics",
}

__all__ = sorted(_API) + ["__version__"]


from ._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _API, globals())
