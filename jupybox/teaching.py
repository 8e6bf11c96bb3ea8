"""The set-up of the teaching notebooks (``notebooks/01-...`` to ``14-...``): one call at the top.

    from jupybox.teaching import setup, sh
    lesson = setup("nb03")          # its own store in a temp dir, busybox imported, the magics loaded
    sh("jupybox run --rm busybox ps")
    ...
    lesson.cleanup()                # containers, the store's service, bridges, files: all gone

What a notebook may do depends on the machine (``jupybox info``):

- **root**: everything;
- **rootless**: containers run in user namespaces; a cell whose first line is ``# needs: root``
  (or ``# needs: cgroups``, ``# needs: bridge``) is not run and says so, with the reason, instead;
- **fallback** (no namespace at all, mybinder.org): the notebook shows a notice and every cell
  after the set-up says it was skipped: the text tells what it shows on a Linux machine.

Shell commands run with ``sh()`` in the lesson's work directory with ``$WORK`` (that directory),
``$JUPYBOX_ROOT`` (its store) and ``$BUSYBOX_TAR`` (the busybox root filesystem tarball) set, and
the ``jupybox`` of this kernel first on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

__all__ = ["Lesson", "Shell", "setup", "sh"]

#: what a ``# needs: X`` cell needs, and why, by mode
WHY = {
    "root": "it does as root what a container runtime does (mounts, chroot, cgroups, network links)",
    "cgroups": "limits are enforced by cgroups, and this machine gives none to this user "
               "(jupybox falls back to rlimits: -m and --pids-limit per process, no CPU quota)",
    "bridge": "bridge networks need root (rootless containers use the host's network or none)",
}

NOTICE = ("> **Containers cannot run here.** `jupybox info` reports mode `{mode}` ({reason}). "
          "On mybinder.org and hosts like it no namespace can be made, so no container can run. "
          "The cells below are skipped: the text says what each one shows on a Linux machine, "
          "as root or as a normal user (rootless). The notebook is committed with the outputs of a "
          "run as root.")


class Shell(subprocess.CompletedProcess):
    """A finished command (``.returncode``, ``.stdout``). Its output was printed as it ran, so
    as a cell's last value it shows nothing more."""

    def _ipython_display_(self) -> None:
        pass


def sh(cmd: str, check: bool = True) -> Shell:
    """Run a shell command like a terminal would: print it, then its output (stderr included);
    raise when it fails unless ``check=False``."""
    print("$", cmd)
    p = subprocess.run(cmd, shell=True, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       cwd=os.environ.get("WORK") or None)
    print(p.stdout, end="")
    if check and p.returncode:
        raise RuntimeError(f"exit status {p.returncode}: {cmd}")
    return Shell(p.args, p.returncode, p.stdout)


@dataclass
class Lesson:
    name: str
    mode: str                      # "root", "rootless" or "fallback"
    reason: str = ""
    work: str | None = None        # this notebook's files ($WORK)
    root: str | None = None        # its jupybox store ($JUPYBOX_ROOT), under work
    busybox_tar: str | None = None
    cgroups: bool = False          # are limits enforced by cgroups?
    _transformer: object = field(default=None, repr=False)
    _saved_env: dict = field(default_factory=dict, repr=False)

    @property
    def can_run(self) -> bool:
        return self.mode != "fallback"

    def missing(self, need: str) -> str | None:
        """Why this lesson cannot do what ``need`` names here, or None."""
        if need not in WHY:
            raise ValueError(f"unknown need {need!r} (known: {', '.join(WHY)})")
        if self.mode == "root":
            return None
        if need == "cgroups" and self.cgroups:
            return None
        return WHY[need]

    def cleanup(self) -> None:
        """Everything the lesson made: containers (killed), its store's service, bridges, cgroups,
        the store and the work directory."""
        ip = _ipython()
        if ip is not None and self._transformer in ip.input_transformers_cleanup:
            ip.input_transformers_cleanup.remove(self._transformer)
        if self.root is not None:
            import jupybox

            jupybox.reset(self.root)
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        print("cleaned up")


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _needs_of(lines: list[str]) -> list[str]:
    """The needs a cell declares on its first line: ``# needs: root, cgroups``."""
    if lines and lines[0].startswith("# needs:"):
        return [n.strip() for n in lines[0][len("# needs:"):].split(",") if n.strip()]
    return []


def _skipping_transformer(lesson: Lesson):
    """An IPython input transformer: a cell whose needs are not met here prints why instead."""
    def transform(lines: list[str]) -> list[str]:
        if lesson.mode == "fallback":
            return ["print('(skipped: no containers here; the text above says what this cell shows)')\n"]
        needs = _needs_of(lines)
        reasons = [f"{n}: {why}" for n in needs if (why := lesson.missing(n))]
        if not reasons:
            if needs and any(line.startswith("%%") for line in lines[1:2]):
                return lines[1:]   # a cell magic must come first: `# needs:` above it is dropped
            return lines
        return [f"print({f'(skipped in {lesson.mode} mode: this cell needs ' + '; '.join(reasons) + ')'!r})\n"]
    return transform


def setup(name: str, busybox: bool = True) -> Lesson:
    """Prepare a teaching notebook: a temp work directory with the notebook's own store in it
    (nothing else on the machine is touched), this kernel's ``jupybox`` on PATH, the magics, and
    (with ``busybox``) an image ``busybox`` imported from Debian's busybox-static."""
    saved = {k: os.environ.get(k) for k in ("PATH", "WORK", "JUPYBOX_ROOT", "BUSYBOX_TAR")}
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    work = tempfile.mkdtemp(prefix=f"jupybox-{name}-")
    root = os.path.join(work, "store")
    os.environ["WORK"] = work
    os.environ["JUPYBOX_ROOT"] = root   # the CLI, the API and the magics all use this store

    from .runtime import mode as modes

    m = modes.detect(refresh=True)
    lesson = Lesson(name, m.name, m.reason, work, root, _saved_env=saved)
    ip = _ipython()
    if ip is not None:
        ip.run_line_magic("load_ext", "jupybox")
    if lesson.can_run:
        import jupybox

        lesson.cgroups = jupybox.engine().cgroups.layout != "none"
        if busybox:
            from .testing import busybox_tarball, cache_dir

            lesson.busybox_tar = str(busybox_tarball(cache_dir()))  # ~1 MB, built once, cached
            os.environ["BUSYBOX_TAR"] = lesson.busybox_tar
            subprocess.run(["jupybox", "import", "-m", "busybox-static, imported by jupybox.teaching",
                            lesson.busybox_tar, "busybox"], check=True, stdout=subprocess.DEVNULL)
    else:
        # nothing to clean up but the empty work dir: remove it now, the cleanup cell is skipped
        shutil.rmtree(work, ignore_errors=True)
        lesson.work = lesson.root = None
        for k, v in saved.items():
            if k != "PATH":
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    if ip is not None:
        lesson._transformer = _skipping_transformer(lesson)
        ip.input_transformers_cleanup.append(lesson._transformer)
    _announce(lesson)
    return lesson


def _announce(lesson: Lesson) -> None:
    if not lesson.can_run:
        text = NOTICE.format(mode=lesson.mode, reason=lesson.reason)
        try:
            from IPython.display import Markdown, display

            display(Markdown(text))
        except ImportError:
            print(text)
        return
    parts = [f"mode: {lesson.mode}", "store: $WORK/store (a temp dir of this notebook)"]
    if lesson.busybox_tar:
        parts.append("image: busybox")
    print(" · ".join(parts))
    if lesson.mode != "root":
        print("cells marked `# needs: ...` that this mode cannot run print why instead: "
              + "; ".join(f"{n}: {lesson.missing(n)}" for n in WHY if lesson.missing(n)))
