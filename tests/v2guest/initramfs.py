"""The guest's kernel and its initramfs: busybox-static, scripts/v2guest/init.sh as /init, and the
kernel modules the guest needs (with their dependencies, in load order) from /lib/modules of the
same Debian kernel package. Built once per kernel, init script and busybox, cached under the test
cache (``jupybox.testing.cache_dir()/v2guest``), never in git.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INIT_SCRIPT = REPO / "scripts" / "v2guest" / "init.sh"
BUSYBOX = "/bin/busybox"
# virtio for the disk and the shares, ext4 for the scratch disk, overlay and fuse for containers,
# veth/bridge/nf_tables (+ the nft expressions jupybox's table uses) for bridge networks, tun for
# slirp4netns
MODULES = (
    "virtio_pci", "virtio_blk", "9pnet_virtio", "9p", "crc32c_generic", "ext4", "overlay", "fuse",
    "veth", "bridge", "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq", "nft_ct", "nft_fib_inet",
    "nft_fib_ipv4", "tun",
)


@dataclass(frozen=True)
class Kernel:
    version: str  # e.g. 6.1.0-57-amd64
    image: str  # /boot/vmlinuz-<version>
    modules: str  # /lib/modules/<version>

    @property
    def release(self) -> tuple[int, int]:
        major, minor = re.match(r"(\d+)\.(\d+)", self.version).groups()
        return int(major), int(minor)


def find_kernel() -> Kernel | None:
    """The newest /boot/vmlinuz-* that is readable and has its /lib/modules directory (linux-image-amd64)."""
    found = []
    for image in glob.glob("/boot/vmlinuz-*"):
        version = image.removeprefix("/boot/vmlinuz-")
        modules = f"/lib/modules/{version}"
        if os.access(image, os.R_OK) and os.path.isfile(f"{modules}/modules.dep"):
            found.append(Kernel(version, image, modules))
    key = lambda k: [int(x) if x.isdigit() else 0 for x in re.split(r"[.-]", k.version)]  # noqa: E731
    return max(found, key=key) if found else None


def old_kernel() -> Kernel | None:
    """Debian 11's kernel (5.10) as ``make test-fixtures`` fetched it under the test cache
    (jupybox.testing.kernels), or None if it was not fetched."""
    from jupybox.testing import cache_dir
    from jupybox.testing.kernels import cached_kernel

    found = cached_kernel(cache_dir(create=False))
    if found is None:
        return None
    version, image, modules = found
    return Kernel(version, str(image), str(modules))


def module_order(modules_dir: str, wanted=MODULES) -> list[tuple[str, str]]:
    """[(name, path relative to modules_dir)] of ``wanted`` and their dependencies, dependencies first
    (modules.dep lists each module's full set; builtin ones are not in it and need no loading)."""
    deps: dict[str, tuple[str, list[str]]] = {}
    with open(os.path.join(modules_dir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[_name(path)] = (path, [_name(d) for d in rest.split()])
    builtin = set()
    try:
        with open(os.path.join(modules_dir, "modules.builtin")) as f:
            builtin = {_name(line.strip()) for line in f}
    except FileNotFoundError:
        pass
    order: list[tuple[str, str]] = []

    def add(name: str, chain: tuple[str, ...] = ()) -> None:
        if name in chain:
            raise RuntimeError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        if name in builtin or any(n == name for n, _ in order):
            return
        if name not in deps:
            raise RuntimeError(f"kernel module {name} is not in {modules_dir}")
        path, needs = deps[name]
        for dep in needs:
            add(dep, chain + (name,))
        order.append((name, path))

    for name in wanted:
        add(name.replace("-", "_"))
    return order


def _name(path: str) -> str:
    base = os.path.basename(path)
    return re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base).replace("-", "_")


def _read_module(path: str) -> bytes:
    """A module file, decompressed (busybox's insmod reads plain ELF objects)."""
    if path.endswith(".ko.xz"):
        import lzma

        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".ko.gz"):
        with gzip.open(path) as f:
            return f.read()
    if path.endswith(".ko.zst"):
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    with open(path, "rb") as f:
        return f.read()


def _digest(kernel: Kernel, order: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    h.update(kernel.version.encode())
    for name, path in order:
        st = os.stat(os.path.join(kernel.modules, path))
        h.update(f"{name}:{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    h.update(INIT_SCRIPT.read_bytes())
    h.update(Path(BUSYBOX).read_bytes())
    return h.hexdigest()[:16]


def initramfs(kernel: Kernel, cache: Path) -> Path:
    """The cached initramfs for ``kernel`` (built on a miss: ~1 s)."""
    order = module_order(kernel.modules)
    out = cache / "v2guest" / f"initramfs-{kernel.version}-{_digest(kernel, order)}.img"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f"initramfs-{kernel.version}-*.img"):
        old.unlink()  # a previous init script or module set
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        root = Path(tmp) / "root"
        for d in ("bin", "lib/modules", "proc", "sys", "dev", "newroot"):
            (root / d).mkdir(parents=True)
        shutil.copy(BUSYBOX, root / "bin" / "busybox")
        shutil.copy(INIT_SCRIPT, root / "init")
        (root / "init").chmod(0o755)
        for name, path in order:
            (root / "lib" / "modules" / f"{name}.ko").write_bytes(_read_module(os.path.join(kernel.modules, path)))
        (root / "modules.order").write_text("".join(f"{name}\n" for name, _ in order))
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        cpio = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root,
                              input="\n".join(files).encode(), capture_output=True, check=True).stdout
        part = Path(tmp) / "initramfs.img"
        with gzip.open(part, "wb", compresslevel=1) as f:
            f.write(cpio)
        os.replace(part, out)
    return out
