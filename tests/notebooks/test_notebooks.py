"""Every notebook in notebooks/ runs top to bottom in a real kernel (nbclient), leaves nothing
behind, and its committed outputs are those the current code prints.

The notebooks assert what their text claims (PID 1, the OOM kill, the layer contents...) in
hidden check cells and in the solutions of their exercises, so a notebook that stops being true
fails here. A notebook states what it needs in its metadata:

    "metadata": {"jupybox": {"requires": ["busybox", "skopeo"], "fallback": true}}

``requires`` names "root", "busybox" (busybox-static), "docker-registry", or any program looked up
on PATH (default: ["root"]). A notebook whose needs are not met is skipped, with the reason.
``fallback: true`` says it also runs as a normal user (rootless: cells marked ``# needs: ...``
print why they cannot run) and where no container can run (mybinder.org: a notice, every cell
skipped); ``fallback_runs: true`` that it runs every cell there under the NO ISOLATION banner.

As root (``test_notebook``) each notebook runs with $TMPDIR and $JUPYBOX_ROOT in a fresh directory
(the kernel's cwd is notebooks/, as in Jupyter); afterwards nothing may be left: no process that
refers to that directory, no mount under it, no new jupybox cgroup, no container, no file in
$TMPDIR, nothing new in notebooks/. Its outputs, normalized (notebook_outputs.py), must equal the
committed ones: `make notebooks` writes them. The executed notebooks are kept in the
``artifacts_dir`` (test-artifacts/<test id>/), with the time each took.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

from tests.notebooks.notebook_outputs import differences  # noqa: E402
from tests.notebooks.notebook_run import NOTEBOOK_DIR, execute, notebooks, read, sandbox  # noqa: E402

from jupybox.testing import registry_available  # noqa: E402
from jupybox.testing.leaks import cgroups, cleanup_mounts_under, kill_processes_under, new_cgroups  # noqa: E402

NOTEBOOKS = notebooks()
IS_ROOT = os.geteuid() == 0

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


def _skip_unless_met(nb, name: str, extra: tuple[str, ...] = ()) -> None:
    reasons = [r for r in map(_missing, [*_settings(nb).get("requires", ["root"]), *extra]) if r]
    if reasons:
        pytest.skip(f"{name}: {'; '.join(reasons)}")


def _outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _texts(nb) -> list[str]:
    return [o.get("text", "") + o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/markdown", "")
            for o in _outputs(nb)]


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
    $JUPYBOX_ROOT): services, container inits, registries, servers a notebook started."""
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


# -- as root: the committed outputs ---------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(path: Path, tmp_path: Path, artifacts_dir: Path):
    committed = read(path)
    _skip_unless_met(committed, path.name)

    box, env = sandbox(tmp_path)
    notebooks_before = _files(NOTEBOOK_DIR, skip_notebooks=True)  # (others may be edited meanwhile)
    cgroups_before = cgroups()
    nb = read(path)
    t0 = time.monotonic()
    try:
        execute(nb, env=env)
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
    diffs = differences(committed, nb)
    assert not diffs, (f"{path.name}: the committed outputs are not those of the current code "
                       f"(run `make notebooks`, then review the diff):\n" + "\n".join(diffs))


# -- as a normal user: rootless --------------------------------------------------------------------
FALLBACK = [p for p in NOTEBOOKS if _settings(read(p)).get("fallback")]


def _user_kernel(box: Path, env: dict, user) -> Path:
    """A kernelspec ``python3-user``: the kernel runs as ``user`` (a real account, with its own
    home and /etc/subuid range), as on a shared machine. jupyter_client writes the connection file
    as root, readable by root only: the wrapper hands the user a copy, then drops to the user.
    Returns the kernel's $TMPDIR (in the user's home: the test's own directories are root's)."""
    spec = box / "kernels" / "share" / "jupyter" / "kernels" / "python3-user"
    spec.mkdir(parents=True)
    conn = user.home / "kernel.json"
    tmp, run = user.home / "tmp", user.home / "run"
    for d in (tmp, run):
        d.mkdir(mode=0o700)
        os.chown(d, user.uid, user.gid)
    # $XDG_RUNTIME_DIR as a login session sets it (skopeo and podman look for their auth file
    # there; without it they try /run/containers/UID, which a root podman may have made root's)
    user_env = user.env(TMPDIR=str(tmp), XDG_RUNTIME_DIR=str(run),
                        JUPYBOX_TEST_CACHE=str(user.home / ".cache" / "jupybox-tests"))
    drop = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in user_env.items()),
                       *user.argv([sys.executable, "-m", "ipykernel_launcher", "-f", str(conn)])])
    script = (f"install -o {user.uid} -g {user.gid} -m 600 {{connection_file}} {shlex.quote(str(conn))} "
              f"&& exec {drop}")
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["sh", "-c", script], "display_name": f"Python 3 ({user.name})", "language": "python",
    }))
    env["JUPYTER_PATH"] = str(box / "kernels" / "share" / "jupyter")
    return tmp


@pytest.fixture(scope="module")
def user():
    """One real unprivileged user, with a /etc/subuid range, for the module's rootless runs
    (each notebook then cleans up after itself, as it must)."""
    from jupybox.testing.rootless import unavailable, unprivileged_user

    if why := unavailable():
        pytest.skip(why)
    with unprivileged_user(subids=True) as made:
        yield made


@pytest.mark.parametrize("path", FALLBACK, ids=[p.stem for p in FALLBACK])
def test_notebook_rootless(path: Path, tmp_path: Path, artifacts_dir: Path, request):
    """The notebook as a normal user with a /etc/subuid range: jupybox's rootless mode. Every cell
    either runs (and its checks hold there too) or says, in one line, which need it lacks here."""
    nb = read(path)
    _skip_unless_met(nb, path.name, extra=("root",))
    user = request.getfixturevalue("user")
    box, env = sandbox(tmp_path)
    tmp = _user_kernel(box, env, user)
    try:
        t0 = time.monotonic()
        execute(nb, kernel_name="python3-user", env=env)
    finally:
        elapsed = time.monotonic() - t0
        nbformat.write(nb, artifacts_dir / path.name)
        (artifacts_dir / "time.json").write_text(json.dumps({"notebook": path.name, "seconds": round(elapsed, 1)}))
        left = _wait_gone(tmp)
        _kill(left)
        left_files = sorted(_files(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(user.home / "run", ignore_errors=True)
        (user.home / "kernel.json").unlink(missing_ok=True)
    texts = _texts(nb)
    assert any(t.startswith("mode: rootless") for t in texts), "not run in the rootless mode"
    skipped = [t for t in texts if t.startswith("(skipped in rootless mode: this cell needs ")]
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = len(code) - len(skipped)
    print(f"{path.name}: {ran} of {len(code)} code cells ran rootless, in {elapsed:.1f} s")
    assert ran >= 3, f"only {ran} cells ran rootless: rootless runs what it supports"
    assert len(skipped) <= sum(c.source.startswith("# needs:") for c in code)
    assert not left, f"{path.name} left processes running: {left}"
    assert not left_files, f"{path.name} left files in $TMPDIR: {left_files[:10]}"


# -- where no container can run: mybinder.org -----------------------------------------------------
def _binder_kernel(box: Path, env: dict) -> None:
    """A kernelspec ``python3-binder``: uid 1000 in a user namespace of its own, like Binder's
    `jovyan`, under a seccomp filter that refuses every new namespace (mybinder.org: no container
    runtime can work there)."""
    spec = box / "kernels" / "share" / "jupyter" / "kernels" / "python3-binder"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--",
                 sys.executable, "-m", "jupybox.testing.nonamespaces", "--",
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (Binder-like)", "language": "python",
    }))
    env["JUPYTER_PATH"] = str(box / "kernels" / "share" / "jupyter")


def _run_on_binder(path: Path, tmp_path: Path, artifacts_dir: Path):
    """Execute ``path`` in the Binder-like kernel; returns (its sandbox, the executed notebook)."""
    if not IS_ROOT:
        pytest.skip("the test makes its Binder-like kernel from root")
    if not shutil.which("unshare"):
        pytest.skip("util-linux unshare is not installed")
    box, env = sandbox(tmp_path)
    _binder_kernel(box, env)
    nb = read(path)
    try:
        execute(nb, kernel_name="python3-binder", env=env)
    finally:
        nbformat.write(nb, artifacts_dir / path.name)
        _kill(_wait_gone(box))
    return box, nb


FALLBACK_RUNS = [p for p in NOTEBOOKS if _settings(read(p)).get("fallback_runs")]


@pytest.mark.parametrize("path", FALLBACK_RUNS, ids=[p.stem for p in FALLBACK_RUNS])
def test_notebook_on_binder(path: Path, tmp_path: Path, artifacts_dir: Path):
    """As on mybinder.org: not root, and no namespace can be made. The notebook runs every cell in
    the fallback mode, under the NO ISOLATION notice, and its asserts hold there too."""
    box, nb = _run_on_binder(path, tmp_path, artifacts_dir)
    texts = _texts(nb)
    assert any("mode: fallback" in t for t in texts)
    notices = sum("NO ISOLATION" in t for t in texts)
    container_cells = sum(c.cell_type == "code" and ("%%container" in c.source or "'container', '-m" in c.source)
                          for c in nb.cells)
    assert container_cells and notices >= container_cells, (notices, container_cells)  # each cell that ran one
    containers = box / "store" / "containers"
    assert not containers.exists() or not any(containers.iterdir())


@pytest.mark.parametrize("path", FALLBACK, ids=[p.stem for p in FALLBACK])
def test_notebook_without_containers(path: Path, tmp_path: Path, artifacts_dir: Path):
    """Where containers cannot run (mybinder.org), the notebook says so and runs to its end."""
    box, nb = _run_on_binder(path, tmp_path, artifacts_dir)
    texts = _texts(nb)
    assert any("Containers cannot run here" in t for t in texts), "no fallback notice"
    skipped = sum("skipped: no containers here" in t for t in texts)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    assert skipped == code_cells - 1, (skipped, code_cells)  # every cell after the set-up cell
    assert not _files(box / "tmp"), "the set-up left its work directory"
