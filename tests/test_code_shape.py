"""The code's shape, kept as the README's Architecture section describes it: which package may
import which, the one layer that calls ctypes, and modules of one job (at most ~500 lines).

Data flows one way: the faces (the CLI, the notebook, the JupyterHub spawner) and the front ends
over the Python API (compose, kube, the Dockerfile builder) -> the API and the store's service ->
the runtime -> the image store, the cgroup layer, the network -> ``jupybox.linux``, the one layer
that touches the kernel beyond plain files (and the only one that calls ctypes).

Every ``import`` of a jupybox module inside jupybox is read from the source (lazy imports in
functions included) and checked against ``MAY_IMPORT``. Edges that break it and are known are in
``KNOWN``, each with what would remove it; the test fails on a new edge *and* on a known one that
is gone (so the list never outlives the debt).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jupybox"

NEUTRAL = {"errors", "paths", "units", "_lazy", "plain", "procs", "jsonfile"}  # plain helpers every layer may use

# package -> the packages it may import (besides itself and NEUTRAL). "jupybox" is the package root:
# the public API, re-exported lazily from api, runtime.container, runtime.spec, errors.
MAY_IMPORT = {
    "errors": set(),
    "units": set(),
    "paths": set(),
    "_lazy": set(),
    "plain": set(),
    "procs": set(),
    "jsonfile": {"linux"},  # RENAME_EXCHANGE (linux.syscalls)
    "linux": set(),
    "cgroups": {"linux"},
    "image": {"linux"},  # a scratch mount in a private namespace (image.scratch)
    "network": {"linux"},
    "registry": {"image"},
    "runtime": {"linux", "cgroups", "image", "network"},
    "service": {"linux", "runtime"},
    "api": {"runtime", "service"},
    "jupybox": {"api"},
    # front ends over the Python API: what they make is containers, through the API
    "dockerfile": {"jupybox", "api", "runtime", "image", "registry", "linux"},  # linux: userns's id map of a layer
    "compose": {"jupybox", "api", "runtime", "network", "image", "registry", "dockerfile"},
    "kube": {"jupybox", "api", "runtime", "image", "registry", "compose"},
    # environments -> images (issue 18); cli, jupyter: `notebook lock` reads %%container cells with the one parser
    "env": {"jupybox", "api", "runtime", "image", "registry", "dockerfile", "cli", "jupyter"},
    # the faces
    "hub": {"jupybox", "api", "runtime", "network"},
    "cli": {"jupybox", "api", "service", "runtime", "image", "registry", "network", "dockerfile", "compose", "kube",
            "env", "jupyter"},  # jupyter: `jupybox kernel install` writes a kernelspec (jupyter.kernelspec)
    "jupyter": {"jupybox", "api", "runtime", "cgroups", "registry", "dockerfile", "compose", "env",
                "cli"},  # cli: the one parser and the verbs, shared with the CLI
    "teaching": {"jupybox", "api", "runtime", "jupyter", "testing"},  # the teaching notebooks' set-up
    "__main__": {"cli"},
}

# The runtime's modules the layers above the service may use: the spec and its options, the
# Container object, records and stats read through the Engine, volumes, the fallback mode. Never
# how a container is made (sandbox, initproto, rootfs, hostroot): only the service makes one.
RUNTIME_FOR_CLIENTS = {"runtime", "runtime.spec", "runtime.options", "runtime.container", "runtime.engine",
                       "runtime.volumes", "runtime.fdio", "runtime.signals", "runtime.mode", "runtime.unisolated",
                       "runtime.state", "runtime.records", "runtime.cellfiles"}
CLIENTS = {"api", "jupybox", "dockerfile", "compose", "kube", "env", "hub", "cli", "jupyter", "teaching"}

# Known edges against MAY_IMPORT: (importer, imported) -> what removes it.
KNOWN = {
    ("jupybox.cli.info", "jupybox.linux.seccomp"): "`jupybox info` gets what it prints from the API (api.info)",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").exists() or (PACKAGE.parent / rel / "__init__.py").exists()


def imports(path: Path) -> set[str]:
    """The jupybox modules ``path`` imports (``from . import x`` names module x when it is one)."""
    me = _module_name(path)
    here = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "jupybox")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "jupybox":
                base = node.module
            else:
                continue
            subs = [f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")]
            out.update(subs or [base])
            if len(subs) < len(node.names):
                out.add(base)
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "jupybox"


def _is_testing(module: str) -> bool:
    return "testing" in module.split(".")  # helpers for tests (jupybox.testing, hub.testing): anything goes


def all_edges() -> set[tuple[str, str]]:
    return {(_module_name(p), t) for p in PACKAGE.rglob("*.py") for t in imports(p)}


def violations(edges) -> set[tuple[str, str]]:
    bad = set()
    for src, dst in edges:
        a, b = _package(src), _package(dst)
        if a == b or b in NEUTRAL or _is_testing(src):
            continue
        if a not in MAY_IMPORT:
            bad.add((src, dst))  # a new package: give it a place in the table
        elif b not in MAY_IMPORT[a] or (a in CLIENTS and b == "runtime" and dst[len("jupybox."):]
                                          not in RUNTIME_FOR_CLIENTS):
            bad.add((src, dst))
    return bad


def test_the_resolver_sees_every_kind_of_import(tmp_path):
    # a check that reads no edge passes everything: these must all be seen
    edges = all_edges()
    assert ("jupybox.api", "jupybox.runtime.engine") in edges  # from .runtime.engine import Engine
    assert ("jupybox.network.manager", "jupybox.network.endpoints") in edges  # from .endpoints import ...
    assert ("jupybox.cli.images", "jupybox.registry") in edges  # from ..registry import pull (in a function)
    assert ("jupybox.cli.info", "jupybox.linux.seccomp") in edges  # from ..linux import seccomp
    assert ("jupybox.jupyter.cellrunner", "jupybox") in edges  # import jupybox


def test_every_package_has_a_place_in_the_layering():
    packages = {_package(_module_name(p)) for p in PACKAGE.rglob("*.py")} - {"testing"}
    assert packages <= set(MAY_IMPORT), f"add {sorted(packages - set(MAY_IMPORT))} to MAY_IMPORT"


def test_imports_follow_the_layering():
    found = violations(all_edges())
    new = sorted(found - set(KNOWN))
    gone = sorted(set(KNOWN) - found)
    assert not new, "imports against the layering (see MAY_IMPORT):\n" + "\n".join(f"  {a} -> {b}" for a, b in new)
    assert not gone, "fixed: remove from KNOWN:\n" + "\n".join(f"  {a} -> {b}" for a, b in gone)


@pytest.mark.parametrize("edge, reason", [
    (("jupybox.cgroups.v1.memory", "jupybox.runtime.engine"), "the cgroup layer knows no runtime"),
    (("jupybox.linux.caps", "jupybox.runtime.spec"), "linux imports nothing above it"),
    (("jupybox.cli.run", "jupybox.runtime.sandbox"), "only the service makes containers"),
    (("jupybox.jupyter.magics", "jupybox.service.server"), "a face talks to the service through its client"),
    (("jupybox.image.store", "jupybox.registry.client"), "the image store does not pull"),
    (("jupybox.runtime.engine", "jupybox.api"), "the runtime does not call the API above it"),
])
def test_an_edge_against_the_layering_is_caught(edge, reason):
    assert violations({edge}) == {edge}, reason


def test_only_the_linux_layer_calls_ctypes():
    users = sorted(_module_name(p) for p in PACKAGE.rglob("*.py")
                   if any(isinstance(n, (ast.Import, ast.ImportFrom))
                          and "ctypes" in ([a.name.split(".")[0] for a in n.names] if isinstance(n, ast.Import)
                                           else [(n.module or "").split(".")[0]])
                          for n in ast.walk(ast.parse(p.read_text()))))
    assert users and all(_package(m) == "linux" for m in users), users


def test_the_kernel_layer_imports_nothing_above_it():
    for p in (PACKAGE / "linux").glob("*.py"):
        assert {_package(m) for m in imports(p)} <= {"linux"} | NEUTRAL, p.name


MAX_LINES = 500
# modules still over MAX_LINES -> the seams to split them along
KNOWN_LARGE = {}


def test_modules_stay_under_500_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    large = {name for name, n in sizes.items() if n > MAX_LINES}
    assert not large - set(KNOWN_LARGE), {name: sizes[name] for name in large - set(KNOWN_LARGE)}
    assert not set(KNOWN_LARGE) - large, f"now small enough: remove {sorted(set(KNOWN_LARGE) - large)} from KNOWN_LARGE"
