"""An older Debian release's kernel for the v2 guest's second boot (tests/v2guest).

Debian's current kernel (the host's ``linux-image-amd64``) has every cgroup v2 file jupybox reads;
many machines run older kernels (Debian 11 and Ubuntu 20.04-22.04 ship 5.4-5.15). Debian 11's 5.10
comes before ``memory.peak`` (5.19), ``cgroup.kill`` (5.14), ``mount_setattr`` (5.12) and
``close_range``'s CLOSE_RANGE_CLOEXEC (5.11), and can still switch swap accounting off at boot
(``swapaccount=0``, a no-op since 6.1): booting it runs each fallback on a real kernel.

The package is fetched with apt from its signed index (the host's Debian keyring verifies it;
apt's own state is kept apart, under the cache: the host's sources and lists are not touched),
unpacked with dpkg-deb, and given its modules.dep with depmod (the package's postinst does that on
a real install). Cached under the test cache, never in git: ``make test-fixtures`` makes it, the
suite only reads it (it runs without the network).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .rootfs import _locked

OLD_SUITE = "bullseye"  # Debian 11, Linux 5.10
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# the host's own Debian mirror first (a machine may reach only its local one), then deb.debian.org,
# which keeps a release until it is archived; then archive.debian.org has it (its Release files
# are past their Valid-Until date, which apt then must be told to accept)
MIRRORS = ("http://deb.debian.org/debian", "http://archive.debian.org/debian")
SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")
TOOLS = ("apt-get", "apt-cache", "dpkg-deb", "depmod")


class KernelFetchError(RuntimeError):
    pass


def kernel_dir(cache: str | os.PathLike, suite: str = OLD_SUITE) -> Path:
    return Path(cache) / "kernels" / suite


def cached_kernel(cache: str | os.PathLike, suite: str = OLD_SUITE) -> tuple[str, Path, Path] | None:
    """(version, vmlinuz, modules directory) of the fetched kernel, or None if it was not fetched."""
    base = kernel_dir(cache, suite)
    try:
        version = json.loads((base / "kernel.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    image, modules = base / "boot" / f"vmlinuz-{version}", base / "lib" / "modules" / version
    if not (image.is_file() and (modules / "modules.dep").is_file()):
        return None
    return version, image, modules


def debian_kernel(cache: str | os.PathLike, suite: str = OLD_SUITE, timeout: float = 600) -> Path | None:
    """Fetch ``suite``'s ``linux-image-amd64`` kernel once (~56 MB, a few seconds) and return its
    directory; None when apt or kmod's tools are missing (not a Debian host: the boot skips).
    Raises KernelFetchError when no mirror has it."""
    if any(shutil.which(t) is None for t in TOOLS) or not os.path.exists(KEYRING):
        return None
    base = kernel_dir(cache, suite)
    if cached_kernel(cache, suite):
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    with _locked(base.parent / f".{suite}.lock"):
        if cached_kernel(cache, suite):
            return base
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{suite}-", dir=base.parent))
        try:
            errors = []
            for mirror in dict.fromkeys([*host_mirrors(), *MIRRORS]):
                try:
                    deb, version = _download(tmp, mirror, suite, timeout)
                    break
                except KernelFetchError as e:
                    errors.append(f"{mirror}: {e}")
            else:
                raise KernelFetchError(f"Debian {suite}'s kernel could not be fetched:\n" + "\n".join(errors))
            root = tmp / "root"
            _run(["dpkg-deb", "-x", str(deb), str(root)], timeout)
            _run(["depmod", "-b", str(root), version], timeout)
            shutil.rmtree(root / "usr", ignore_errors=True)  # documentation and the like
            (root / "kernel.json").write_text(json.dumps({"suite": suite, "version": version, "deb": deb.name}))
            shutil.rmtree(base, ignore_errors=True)
            os.replace(root, base)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return base


def host_mirrors() -> list[str]:
    """The Debian archive URIs the host's apt uses (one-line and deb822 sources; not the security
    archive, which has no kernel of an old release's own)."""
    files = []
    for path in SOURCES:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith((".list", ".sources")))
        elif os.path.isfile(path):
            files.append(path)
    found = []
    for path in files:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["deb"]:
                words = [w for w in words[1:] if not w.startswith("[") and not w.endswith("]")]
                uris = words[:1]
            elif words[:1] == ["URIs:"]:
                uris = words[1:]
            else:
                continue
            found += [u.rstrip("/") for u in uris if u.startswith("http") and "security" not in u]
    return list(dict.fromkeys(found))


def _download(tmp: Path, mirror: str, suite: str, timeout: float) -> tuple[Path, str]:
    state = tmp / "apt"
    for d in ("lists/partial", "cache/archives/partial"):
        (state / d).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror} {suite} main\n")
    opts = [
        "-o", f"Dir::Etc::SourceList={state / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
        "-o", "Dir::State::status=/dev/null",  # nothing "installed": the suite's own candidates
        "-o", "APT::Architecture=amd64", "-o", "APT::Architectures::=amd64",
        "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1",
    ]
    if "archive.debian.org" in mirror:
        opts += ["-o", "Acquire::Check-Valid-Until=false"]
    _run(["apt-get", "-q", *opts, "update"], timeout)
    depends = _run(["apt-cache", *opts, "depends", "linux-image-amd64"], timeout)
    image = next((line.split()[1] for line in depends.splitlines()
                  if line.strip().startswith("Depends: linux-image-")), None)
    if image is None:
        raise KernelFetchError(f"linux-image-amd64 names no kernel package:\n{depends}")
    _run(["apt-get", "-q", *opts, "download", image], timeout, cwd=tmp)  # checked against the signed index
    debs = list(tmp.glob(f"{image}_*.deb"))
    if len(debs) != 1:
        raise KernelFetchError(f"apt-get download {image} left {[d.name for d in debs]}")
    return debs[0], image.removeprefix("linux-image-")


def _run(argv: list[str], timeout: float, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise KernelFetchError(f"{argv[0]} took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise KernelFetchError(f"{' '.join(argv[:2])} ... failed ({proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout
