"""Every notebook in notebooks/ runs top to bottom in a real kernel (nbclient) and leaves nothing behind.

The notebooks assert what their text claims (PID 1, the OOM kill, the layer contents...), so a
notebook that stops being true fails here. A notebook states what it needs in its metadata:

    "metadata": {"jupybox": {"requires": ["root", "busybox", "skopeo"], "fallback": true}}

``requires`` names "root", "busybox" (busybox-static), "docker-registry", or any program looked up on
PATH; without it a notebook needs root. A notebook whose needs are not met is skipped, with the reason.
``fallback: true`` says the notebook also runs where containers cannot (mybinder.org): it then shows
a notice and skips its container cells. ``test_notebook_without_root`` checks that path as a
non-root user (uid 1000 in a user namespace of its own).

The committed file may hold light outputs and images worth showing, never a traceback, widget
state or heavy outputs. Each notebook runs with $TMPDIR and $JUPYBOX_ROOT in a fresh directory
(the kernel's cwd is notebooks/, as in Jupyter); afterwards nothing may be left: no process that refers to that directory, no mount under it, no new jupybox cgroup, no
container, no file in $TMPDIR (notebooks clean up after themselves), nothing new in notebooks/.
The executed notebooks are kept in the ``artifacts_dir`` (test-artifacts/<test id>/).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from jupybox.testing import registry_available  # noqa: E402
from jupybox.testing.leaks import cgroups, cleanup_mounts_under, kill_processes_under, new_cgroups  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IS_ROOT = os.geteuid() == 0
CELL_TIMEOUT = 180  # seconds per cell: generous; a whole notebook takes seconds

pytestmark = [pytest.mark.slow]


# -- what a notebook needs ----------------------------------------------------------------------
def _missing(requirement: str) -> str | None:
    """Why ``requirement`` is not met here, or None."""
    if requirement == "root":
        return None if IS_ROOT else "needs root (euid 0) to start containers"
    if requirement == "busybox":
        return None if os.path.exists("/bin/busybox") else "busybox-static is not installed (/bin/busybox)"
    if requirement == "docker-registry":
        return None if registry_available() else "docker-registry is not installed"
    return None if shutil.which(requirement) else f"{requirement} is not installed"


def _settings(nb) -> dict:
    return dict(nb.metadata.get("jupybox") or {})


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


# -- what a notebook may leave behind -------------------------------------------------------------
def _mentions(pid: int, needle: bytes) -> bool:
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                if needle in f.read():
                    return True
        except OSError:
            continue
    return False


def _processes_mentioning(path: Path) -> dict[int, str]:
    """Live processes whose command line or environment names ``path`` (the kernel's $TMPDIR,
    $JUPYBOX_ROOT): launcher daemons, container inits, registries, servers a notebook started."""
    needle = str(path).encode()
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        if _mentions(int(d), needle):
            try:
                with open(f"/proc/{d}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue  # a zombie holds nothing
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    found[int(d)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return found


def _mounts_under(path: Path) -> list[str]:
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def _wait_gone(path: Path, timeout: float = 10.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        left = _processes_mentioning(path)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _files(directory: Path, skip_notebooks: bool = False) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")
            if not (skip_notebooks and (p.suffix == ".ipynb" or ".ipynb_checkpoints" in p.parts))}


MAX_COMMITTED_OUTPUT = 256 * 1024  # bytes: light text and a few images worth showing, no more


def _check_committed(path: Path, nb) -> None:
    """The committed notebook: no traceback, no widget state, no heavy outputs."""
    outputs = _outputs(nb)
    errors = [o.get("ename") for o in outputs if o["output_type"] == "error"]
    assert not errors, f"{path.name} is committed with error outputs {errors}: clear them"
    assert "widgets" not in nb.metadata, f"{path.name} is committed with widget state: clear it"
    size = len(json.dumps(outputs))
    assert size <= MAX_COMMITTED_OUTPUT, f"{path.name} is committed with {size >> 10} KiB of outputs: clear them"


# -- running one --------------------------------------------------------------------------------
def _execute(nb, *, kernel_name: str = "python3", env: dict, cwd: Path, timeout: int = CELL_TIMEOUT):
    """Run ``nb`` in place with nbclient; the kernel gets ``env`` on top of this process's."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel manager hands this process's environment to the kernel
    try:
        client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=timeout,
                                         resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _sandbox(tmp_path: Path) -> tuple[Path, dict]:
    """A directory for everything the kernel makes: its $TMPDIR and a default $JUPYBOX_ROOT (for
    notebooks that do not make their own). The busybox tarball cache stays shared, on purpose."""
    box = tmp_path / "nb"
    (box / "tmp").mkdir(parents=True)
    env = {"TMPDIR": str(box / "tmp"), "JUPYBOX_ROOT": str(box / "store")}
    return box, env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(path: Path, tmp_path: Path, artifacts_dir: Path):
    committed = _read(path)
    reasons = [r for r in map(_missing, _settings(committed).get("requires", ["root"])) if r]
    if reasons:
        pytest.skip(f"{path.name}: {'; '.join(reasons)}")

    _check_committed(path, committed)

    box, env = _sandbox(tmp_path)
    notebooks_before = _files(NOTEBOOK_DIR, skip_notebooks=True)  # (others may be edited meanwhile)
    cgroups_before = cgroups()
    nb = _read(path)
    t0 = time.monotonic()
    try:
        _execute(nb, env=env, cwd=NOTEBOOK_DIR)
    finally:
        elapsed = time.monotonic() - t0
        nbformat.write(nb, artifacts_dir / path.name)
        (artifacts_dir / "time.json").write_text(json.dumps({"notebook": path.name, "seconds": round(elapsed, 1)}))
        left = _wait_gone(box)
        # whatever happened, the next test starts clean
        _kill(left)
        kill_processes_under(box)
        unmounted = cleanup_mounts_under(box)

    print(f"{path.name}: {elapsed:.1f} s")
    assert not left, f"{path.name} left processes running: {left}"
    assert not unmounted, f"{path.name} left mounts: {unmounted}"
    assert new_cgroups(cgroups_before, settle=5.0) == set(), f"{path.name} left cgroups"
    store = box / "store" / "containers"
    assert not store.exists() or not any(store.iterdir()), f"{path.name} left containers in $JUPYBOX_ROOT"
    leftovers = sorted(_files(box / "tmp"))
    assert not leftovers, f"{path.name} left files in $TMPDIR: {leftovers[:10]}"
    assert _files(NOTEBOOK_DIR, skip_notebooks=True) == notebooks_before, f"{path.name} wrote into notebooks/"


FALLBACK = [p for p in NOTEBOOKS if _settings(_read(p)).get("fallback")]


def _nonroot_kernel(box: Path, env: dict, no_namespaces: bool = False) -> None:
    """A kernelspec ``python3-nonroot``: uid 1000 in a user namespace of its own, like Binder's
    `jovyan`; with ``no_namespaces`` also under a seccomp filter that refuses every new
    namespace (mybinder.org: no container runtime can work there)."""
    spec = box / "kernels" / "share" / "jupyter" / "kernels" / "python3-nonroot"
    spec.mkdir(parents=True)
    guard = [sys.executable, "-m", "jupybox.testing.nonamespaces", "--"] if no_namespaces else []
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--", *guard,
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (uid 1000)", "language": "python",
    }))
    env["JUPYTER_PATH"] = str(box / "kernels" / "share" / "jupyter")


def _run_nonroot(path: Path, tmp_path: Path, artifacts_dir: Path, no_namespaces: bool = False):
    """Execute ``path`` in the non-root kernel; returns (its sandbox, the executed notebook)."""
    if not IS_ROOT:
        pytest.skip("the test makes a non-root kernel from root")
    if not shutil.which("unshare"):
        pytest.skip("util-linux unshare is not installed")
    box, env = _sandbox(tmp_path)
    _nonroot_kernel(box, env, no_namespaces=no_namespaces)
    nb = _read(path)
    try:
        _execute(nb, kernel_name="python3-nonroot", env=env, cwd=NOTEBOOK_DIR)
    finally:
        nbformat.write(nb, artifacts_dir / path.name)
        _kill(_wait_gone(box))
    return box, nb


FALLBACK_RUNS = [p for p in NOTEBOOKS if _settings(_read(p)).get("fallback_runs")]


@pytest.mark.parametrize("path", FALLBACK_RUNS, ids=[p.stem for p in FALLBACK_RUNS])
def test_notebook_on_binder(path: Path, tmp_path: Path, artifacts_dir: Path):
    """As on mybinder.org: not root, and no namespace can be made. The notebook runs every cell in
    the fallback mode, under the NO ISOLATION notice, and its asserts hold there too."""
    box, nb = _run_nonroot(path, tmp_path, artifacts_dir, no_namespaces=True)
    texts = [o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in _outputs(nb)]
    assert any("mode: fallback" in t for t in texts)
    notices = sum("NO ISOLATION" in t for t in texts)
    container_cells = sum(c.cell_type == "code" and ("%%container" in c.source or "'container', '-m" in c.source)
                          for c in nb.cells)
    assert container_cells and notices >= container_cells, (notices, container_cells)  # each cell that ran one
    containers = box / "store" / "containers"
    assert not containers.exists() or not any(containers.iterdir())


@pytest.mark.parametrize("path", FALLBACK, ids=[p.stem for p in FALLBACK])
def test_notebook_without_root(path: Path, tmp_path: Path, artifacts_dir: Path):
    """Where containers cannot run (mybinder.org), the notebook says so and runs to its end.

    The kernel runs as uid 1000 in a user namespace of its own: not root, no capabilities on the
    host, like Binder's `jovyan` (it can still read this machine's root-owned Python)."""
    box, nb = _run_nonroot(path, tmp_path, artifacts_dir)
    texts = [o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in _outputs(nb)]
    assert any("Containers cannot run here" in t for t in texts), "no fallback notice"
    skipped = sum("skipped: no containers here" in t for t in texts)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    assert skipped == code_cells - 1, (skipped, code_cells)  # every cell after the setup cell
    containers = box / "store" / "containers"   # (`jupybox info` makes the empty store layout)
    assert not containers.exists() or not any(containers.iterdir())
