"""Kernelspecs whose kernel runs in a jupybox container (``jupybox kernel install|list|remove``).

A jupybox kernelspec is an ordinary ipykernel spec plus the provisioner stanza::

    {
      "argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "Python 3 (jupybox: host, 2 GiB)",
      "language": "python",
      "interrupt_mode": "signal",
      "env": {"K": "V"},                                    # -e K=V, passed into the container
      "metadata": {
        "kernel_provisioner": {
          "provisioner_name": "jupybox-provisioner",      # entry point -> JupyboxProvisioner
          "config": {"image": "host", "memory": "2g", "cpus": 1.0, "pids_limit": 512,
                     "volumes": ["/data:/data:ro"], "network": "host"}
        }
      }
    }

It is installed with jupyter_client's ``KernelSpecManager`` (same places and rules as ``jupyter
kernelspec install``: system-wide by default, ``--user``, ``--sys-prefix``, ``--prefix P``), so
``jupyter kernelspec list`` and JupyterLab's launcher show it. The limits are validated here, up
front, with the same parser as ``jupybox run`` (``-m 2x`` fails at install, not at the first start);
the provisioner validates the stanza again at every start, since anyone can edit kernel.json.

``argv`` is kept as ``python3 ...``: it is resolved by PATH *inside* the image (for ``host``, the
PATH starts with the running Python's virtualenv, so it is the server's own interpreter).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field

from .. import errors
from ..units import human_size, parse_size

PROVISIONER_NAME = "jupybox-provisioner"
DEFAULT_ARGV = ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
NETWORKS = ("host", "none")
MIN_MEMORY = 6 * 1024 * 1024  # the runtime's (and docker's) minimum
# keys of the provisioner's config stanza (see JupyboxProvisioner's traits)
CONFIG_KEYS = ("image", "memory", "memory_swap", "cpus", "pids_limit", "volumes", "tmpfs", "network",
               "mount_cwd", "root", "read_only", "start_timeout", "usage_extension", "env", "persist_packages")


def validate_config(config: dict) -> dict:
    """Check a provisioner config stanza; return it normalized (unset values dropped).

    Raises :class:`jupybox.errors.UsageError` (``InvalidSize`` for a bad size) with a one-line message.
    """
    from ..runtime.options import parse_env, parse_tmpfs, parse_volume

    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        raise errors.UsageError(f"unknown jupybox kernel setting(s): {', '.join(sorted(unknown))}")
    out: dict = {}
    image = config.get("image") or "host"
    if not isinstance(image, str) or not image.strip():
        raise errors.UsageError(f"invalid image {image!r}")
    out["image"] = image.strip()
    for key, what in (("memory", "memory limit"), ("memory_swap", "memory-swap limit")):
        value = config.get(key)
        if value is None or value == "":
            continue
        n = parse_size(value, what)
        if n == -1:
            if key == "memory_swap":
                out[key] = -1
            continue
        if n < 0:
            raise errors.InvalidSize(f"invalid {what}: {value!r}")
        if key == "memory" and n < MIN_MEMORY:
            raise errors.UsageError(f"invalid memory limit {value!r}: the minimum allowed is 6MB")
        out[key] = value if isinstance(value, str) else n
    if "memory_swap" in out and out["memory_swap"] != -1:
        if "memory" not in out:
            raise errors.UsageError("you should always set the memory limit when using the memory-swap limit")
        if parse_size(out["memory_swap"]) < parse_size(out["memory"]):
            raise errors.UsageError("minimum memory-swap limit should be larger than the memory limit")
    cpus = config.get("cpus")
    if cpus is not None and cpus != "":
        try:
            cpus = float(cpus)
        except (TypeError, ValueError):
            raise errors.UsageError(f"invalid argument {config.get('cpus')!r} for --cpus: a number is expected") from None
        available = os.cpu_count() or 1
        if not 0.01 <= cpus <= available:
            raise errors.UsageError(
                f"range of CPUs is from 0.01 to {available:.2f}, as there are only {available} CPUs available"
            )
        out["cpus"] = cpus
    pids = config.get("pids_limit")
    if pids is not None and pids != "":
        try:
            pids = int(pids)
        except (TypeError, ValueError):
            raise errors.UsageError(f"invalid argument {config.get('pids_limit')!r} for --pids-limit") from None
        if pids == 0 or pids < -1:
            raise errors.UsageError(f"invalid pids limit {pids}: a positive number, or -1 for unlimited")
        if pids > 0:
            out["pids_limit"] = pids
    volumes = []
    for v in config.get("volumes") or []:
        m = parse_volume(str(v))
        if m.type == "bind" and not os.path.exists(m.source):
            raise errors.UsageError(f"invalid volume {v!r}: bind source path does not exist: {m.source}")
        if not m.destination.startswith("/"):
            raise errors.UsageError(f"invalid volume {v!r}: the mount path must be absolute")
        volumes.append(str(v))
    if volumes:
        out["volumes"] = volumes
    tmpfs = [str(t) for t in config.get("tmpfs") or []]
    for t in tmpfs:
        if not parse_tmpfs(t).destination.startswith("/"):
            raise errors.UsageError(f"invalid tmpfs {t!r}: the mount path must be absolute")
    if tmpfs:
        out["tmpfs"] = tmpfs
    network = config.get("network") or "host"
    if network not in NETWORKS:
        raise errors.UsageError(f"network {network!r} is not supported for a kernel: use host or none")
    out["network"] = network
    mount_cwd = config.get("mount_cwd", True)
    if isinstance(mount_cwd, str):
        low = mount_cwd.strip().lower()
        if low in ("true", "yes", "1", ""):
            mount_cwd = True
        elif low in ("false", "no", "0"):
            mount_cwd = False
        elif not mount_cwd.startswith("/"):
            raise errors.UsageError(f"invalid mount_cwd {mount_cwd!r}: true, false or an absolute path inside")
    elif not isinstance(mount_cwd, bool):
        raise errors.UsageError(f"invalid mount_cwd {mount_cwd!r}: true, false or an absolute path inside")
    out["mount_cwd"] = mount_cwd
    env = config.get("env")
    if env:
        out["env"] = parse_env(env if isinstance(env, dict) else list(env))
    for key in ("root", "read_only", "start_timeout", "usage_extension", "persist_packages"):
        if config.get(key) is not None:
            out[key] = config[key]
    if "start_timeout" in out:
        try:
            out["start_timeout"] = float(out["start_timeout"])
        except (TypeError, ValueError):
            raise errors.UsageError(f"invalid start_timeout {config['start_timeout']!r}: seconds expected") from None
    return out


def default_display_name(config: dict) -> str:
    bits = [config.get("image", "host")]
    if config.get("memory") is not None:
        bits.append(human_size(parse_size(config["memory"])).replace("GiB", " GB").replace("MiB", " MB"))
    if config.get("cpus"):
        c = config["cpus"]
        bits.append(f"{c:g} CPU" + ("" if c == 1 else "s"))
    if config.get("network") == "none":
        bits.append("no network")
    return f"Python 3 (jupybox: {', '.join(bits)})"


def kernel_json(config: dict, display_name: str | None = None, env: dict | None = None,
                argv: list[str] | None = None) -> dict:
    config = validate_config(config)
    spec = {
        "argv": list(argv or DEFAULT_ARGV),
        "display_name": display_name or default_display_name(config),
        "language": "python",
        "interrupt_mode": "signal",
        "env": dict(env or {}),
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {"provisioner_name": PROVISIONER_NAME, "config": config},
        },
    }
    return spec


def _ksm(ksm=None):
    if ksm is not None:
        return ksm
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager()


def _resources_dir() -> str | None:
    try:
        from ipykernel.kernelspec import RESOURCES
    except ImportError:
        return None
    return RESOURCES if os.path.isdir(RESOURCES) else None


def check_name(name: str) -> str:
    from jupyter_client.kernelspec import _is_valid_kernel_name

    if not name or not _is_valid_kernel_name(name):
        raise errors.UsageError(
            f"invalid kernel name {name!r}: only ASCII letters, digits and - . _ are allowed"
        )
    return name.lower()


def install(name: str, *, display_name: str | None = None, env: dict | None = None, user: bool = False,
            sys_prefix: bool = False, prefix: str | None = None, argv: list[str] | None = None, ksm=None,
            **config) -> str:
    """Write a jupybox kernelspec; return the directory it was installed in.

    ``config`` takes the provisioner settings: image, memory, memory_swap, cpus, pids_limit, volumes,
    tmpfs, network, mount_cwd, root, read_only, start_timeout, usage_extension.
    """
    from ..runtime.options import parse_env

    name = check_name(name)
    if sum(bool(x) for x in (user, sys_prefix, prefix)) > 1:
        raise errors.UsageError("choose one of --user, --sys-prefix and --prefix")
    spec = kernel_json(config, display_name, parse_env(env or {}), argv)
    if sys_prefix:
        prefix = sys.prefix
    ksm = _ksm(ksm)
    with tempfile.TemporaryDirectory(prefix="jupybox-kernelspec-") as tmp:
        src = os.path.join(tmp, name)
        os.mkdir(src)
        resources = _resources_dir()
        if resources:
            for f in os.listdir(resources):
                if f.startswith("logo-"):
                    shutil.copy(os.path.join(resources, f), src)
        with open(os.path.join(src, "kernel.json"), "w") as f:
            json.dump(spec, f, indent=1)
            f.write("\n")
        try:
            return ksm.install_kernel_spec(src, name, user=user, prefix=prefix)
        except OSError as e:
            raise errors.JupyboxError(f"cannot install kernelspec {name}: {e.strerror or e}") from None


@dataclass
class InstalledKernel:
    name: str
    resource_dir: str
    display_name: str
    config: dict = field(default_factory=dict)
    argv: list = field(default_factory=list)
    env: dict = field(default_factory=dict)

    @property
    def image(self) -> str:
        return self.config.get("image", "host")


def is_jupybox_spec(spec_dict: dict) -> bool:
    prov = (spec_dict.get("metadata") or {}).get("kernel_provisioner") or {}
    return prov.get("provisioner_name") == PROVISIONER_NAME


def list_kernels(ksm=None) -> list[InstalledKernel]:
    """The installed kernelspecs that use the jupybox provisioner, by name."""
    out = []
    for name, entry in sorted(_ksm(ksm).get_all_specs().items()):
        spec = entry.get("spec") or {}
        if not is_jupybox_spec(spec):
            continue
        config = spec["metadata"]["kernel_provisioner"].get("config") or {}
        out.append(InstalledKernel(name, entry.get("resource_dir", ""), spec.get("display_name", name), config,
                                   spec.get("argv") or [], spec.get("env") or {}))
    return out


def remove(name: str, ksm=None) -> str:
    """Remove a jupybox kernelspec (refuses other kernels); return the directory removed."""
    ksm = _ksm(ksm)
    specs = ksm.find_kernel_specs()
    key = name.lower()
    if key not in specs:
        raise errors.NotFound(f"no such kernel: {name}")
    try:
        with open(os.path.join(specs[key], "kernel.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        spec = {}
    if not is_jupybox_spec(spec):
        raise errors.UsageError(f"kernel {name} is not a jupybox kernel: remove it with `jupyter kernelspec remove {name}`")
    try:
        return ksm.remove_kernel_spec(key)
    except OSError as e:
        raise errors.JupyboxError(f"cannot remove kernelspec {name}: {e.strerror or e}") from None
