"""``-i``/``-o``: notebook values into a container's cell and back.

Values travel with cloudpickle (the library made for this: functions, lambdas and classes defined
in the notebook travel by value, with what they refer to), protocol 5.

* In (``-i``): the kernel pickles each value straight into ``in.pkl`` in the cell's directory (no
  copy of it in memory); the runner inside loads them one by one from the file, so a value costs
  its own size against the container's ``-m``, once (protocol 5 rebuilds a NumPy array or a
  bytes object in the buffer it reads into). Those bytes are unpickled only inside the container.
* Out (``-o``): the runner pickles each value on its own (a failure names the variable) and sends
  them through the cell's channel; the kernel unpickles them only when the cell succeeded and only
  because the user asked for them with ``-o``. Unpickling runs code: ``-o`` trusts the cell's
  code and its image as much as code run in the kernel itself (see docs/notebook.md).

The kernel's own cloudpickle is mounted read-only in the container (``/run/jupybox-lib``), so an
image needs none; functions and classes travel as bytecode, which needs the image's Python to be
the kernel's version (the runner names both when it is not).
"""

from __future__ import annotations

import os
import pickle
import sys

from .. import errors

PROTOCOL = 5
INSIDE_LIB = "/run/jupybox-lib"
# what can never cross into another process, and what to do instead
NEVER = ("open files, locks, sockets, threads, generators and database connections cannot cross into a "
         "container; pass what they hold instead (a path, the data, the settings to reconnect)")


class TransferError(errors.JupyboxError, pickle.PicklingError):
    """A ``-i``/``-o`` value that cannot travel (unpicklable, undefined); the message names it."""


def library_dir() -> str:
    """The directory holding the kernel's cloudpickle package (mounted at INSIDE_LIB/cloudpickle)."""
    import cloudpickle

    return os.path.dirname(os.path.abspath(cloudpickle.__file__))


def write_inputs(path: str, names: list[str], user_ns: dict) -> dict[str, int]:
    """Pickle the ``-i`` values into ``path`` one after the other; returns each one's size."""
    import cloudpickle

    for name in names:
        if name not in user_ns:
            raise TransferError(f"-i {name}: no variable named {name!r} in the notebook")
    sizes: dict[str, int] = {}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump({"names": names, "python": list(sys.version_info[:3])}, f, protocol=PROTOCOL)
        for name in names:
            value = user_ns[name]
            start = f.tell()
            try:
                cloudpickle.dump(value, f, protocol=PROTOCOL)
            except Exception as e:  # noqa: BLE001 - any pickling failure is reported the same way
                raise TransferError(f"-i {name}: cannot send a {type(value).__name__} into the container "
                                    f"({type(e).__name__}: {e}); {NEVER}") from None
            sizes[name] = f.tell() - start
    return sizes


def env_inputs(names: list[str], user_ns: dict) -> list[str]:
    """-i for a COMMAND cell: simple values become environment variables."""
    out = []
    for name in names:
        if name not in user_ns:
            raise TransferError(f"-i {name}: no variable named {name!r} in the notebook")
        v = user_ns[name]
        if not isinstance(v, (str, int, float, bool)):
            raise TransferError(f"-i {name}: a COMMAND cell gets -i values as environment variables "
                                f"(str, int, float or bool), not {type(v).__name__}; "
                                f"run the cell as Python (no COMMAND) to pass any picklable value")
        out.append(f"{name}={v}")
    return out


def read_outputs(names: list[str], message: dict | None, blob: bytes | None) -> dict:
    """The ``-o`` values from the runner's ``outputs`` message (sizes, errors) and its bytes."""
    if message is None or blob is None:
        raise TransferError(f"-o {','.join(names)}: the cell ended without returning its values")
    errs = message.get("errors") or {}
    sizes = message.get("sizes") or {}
    for name in names:
        if name in errs:
            why = str(errs[name])
            raise TransferError(f"-o {name}: {why}" + ("" if "did not define" in why else f"; {NEVER}"))
    values, at = {}, 0
    for name in names:
        size = sizes.get(name)
        if not isinstance(size, int) or size < 0 or at + size > len(blob):
            raise TransferError(f"-o {name}: the container sent a malformed value")
        try:
            values[name] = pickle.loads(memoryview(blob)[at:at + size])
        except Exception as e:  # noqa: BLE001
            raise TransferError(f"-o {name}: cannot be unpickled in the notebook: {type(e).__name__}: {e}") from None
        at += size
    return values
