"""jupybox.teaching: the one-call set-up of the teaching notebooks. The notebooks themselves run in
tests/notebooks (as root, rootless and where no container can run); here, the pieces: what a cell
marked ``# needs: ...`` becomes in each mode, and the ``sh()`` helper."""

from __future__ import annotations

import pytest

from jupybox.teaching import WHY, Lesson, Shell, _needs_of, _skipping_transformer, sh


def _lesson(mode: str, cgroups: bool = False) -> Lesson:
    return Lesson("test", mode, cgroups=cgroups)


def test_needs_are_read_from_the_first_line_only():
    assert _needs_of(["# needs: root\n", "x = 1\n"]) == ["root"]
    assert _needs_of(["# needs: root, cgroups\n"]) == ["root", "cgroups"]
    assert _needs_of(["x = 1\n", "# needs: root\n"]) == []
    assert _needs_of([]) == []


def test_as_root_every_cell_runs_as_written():
    transform = _skipping_transformer(_lesson("root"))
    cell = ["# needs: root\n", "print(1)\n"]
    assert transform(cell) == cell
    assert transform(["print(2)\n"]) == ["print(2)\n"]


def test_a_cell_magic_below_a_met_need_comes_first():
    transform = _skipping_transformer(_lesson("root"))
    assert transform(["# needs: cgroups\n", "%%container -m 100m\n", "x = 1\n"]) == ["%%container -m 100m\n", "x = 1\n"]


def test_rootless_skips_what_it_lacks_and_says_why():
    lesson = _lesson("rootless", cgroups=False)
    transform = _skipping_transformer(lesson)
    out = transform(["# needs: root\n", "os.mkdir('/sys/fs/cgroup/x')\n"])
    assert len(out) == 1
    printed = eval(out[0].removeprefix("print(").rstrip().removesuffix(")"))  # noqa: S307 - our own literal
    assert printed == f"(skipped in rootless mode: this cell needs root: {WHY['root']})"
    assert transform(["# needs: cgroups\n", "x\n"])[0].startswith("print('(skipped in rootless mode: this cell needs cgroups")
    assert transform(["x = 1\n"]) == ["x = 1\n"]


def test_rootless_with_delegated_cgroups_runs_the_cgroup_cells():
    transform = _skipping_transformer(_lesson("rootless", cgroups=True))
    assert transform(["# needs: cgroups\n", "x = 1\n"]) == ["# needs: cgroups\n", "x = 1\n"]
    assert transform(["# needs: bridge\n", "x = 1\n"]) != ["# needs: bridge\n", "x = 1\n"]


def test_without_containers_every_cell_is_skipped():
    transform = _skipping_transformer(_lesson("fallback"))
    assert transform(["x = 1\n"]) == ["print('(skipped: no containers here; the text above says what this cell shows)')\n"]


def test_an_unknown_need_is_an_error_not_a_silent_run():
    with pytest.raises(ValueError, match="unknown need 'gpu'"):
        _lesson("rootless").missing("gpu")


def test_sh_prints_like_a_terminal_and_raises_on_failure(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WORK", str(tmp_path))
    (tmp_path / "here.txt").write_text("")
    r = sh("ls; echo oops >&2")
    assert isinstance(r, Shell) and r.returncode == 0 and r.stdout == "here.txt\noops\n"
    assert capsys.readouterr().out == "$ ls; echo oops >&2\nhere.txt\noops\n"
    assert sh("exit 3", check=False).returncode == 3
    with pytest.raises(RuntimeError, match="exit status 3: exit 3"):
        sh("exit 3")


def test_a_shell_result_adds_no_output_of_its_own():
    # as a cell's last value it must not print the CompletedProcess again below the output
    r = Shell("true", 0, "")
    assert r._ipython_display_() is None
