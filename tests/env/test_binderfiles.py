"""Binder files are checked before a build: one line naming FILE:LINE, exit 125 from the CLI."""

from __future__ import annotations

import io

import pytest

from jupybox.cli import Context, execute
from jupybox.env import binder, binderfiles
from jupybox.env.binderfiles import BinderFileError


def repo_with(tmp_path, **files):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    for name, text in files.items():
        p = repo / name.replace("__", "/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return repo


@pytest.mark.parametrize("files, message", [
    ({"requirements.txt": "numpy==1.26\ntabulate==\n"}, "requirements.txt:2: invalid requirement 'tabulate=='"),
    ({"requirements.txt": "# comment\n\n--bogus-option x\n"}, "requirements.txt:3: --bogus-option: not an option"),
    ({"requirements.txt": "six \\\n  ==1.16.0 --hash=sha256:abc\n"}, "requirements.txt:1: --hash=sha256:abc: expected"),
    ({"requirements.txt": "-e .\n"}, "requirements.txt:1: -e: editable installs"),
    ({"requirements.txt": "six\n-r ../outside.txt\n"}, "requirements.txt:2: -r ../outside.txt: outside the repository"),
    ({"requirements.txt": "-r more.txt\n", "more.txt": "ok\nnot a requirement!\n"},
     "more.txt:2: invalid requirement 'not a requirement!'"),
    ({"requirements.txt": "-r requirements.txt\n"}, "requirements.txt:1: -r requirements.txt: includes itself"),
    ({"requirements.txt": "./dist/pkg.whl\n"}, "requirements.txt:1: invalid requirement './dist/pkg.whl': a path"),
    ({"apt.txt": "curl\n# tools\nLibFoo\n"}, "apt.txt:3: 'LibFoo' is not a Debian package name"),
    ({"runtime.txt": "python3.11\n"}, "runtime.txt:1: 'python3.11': expected python-X.Y"),
    ({"runtime.txt": "r-4.1-2022-01-01\n"}, "runtime.txt:1: r-4.1-2022-01-01: R environments"),
    ({"environment.yml": "name: x\ndependencies:\n  - python=3.11\n  - numpy=1.26\n"},
     "environment.yml:4: conda package 'numpy=1.26': no conda channel can be reached"),
    ({"environment.yml": "dependencies:\n  - pip:\n    - tabulate==\n"}, "environment.yml:3: invalid requirement"),
    ({"environment.yml": "dependencies: [a\n"}, "environment.yml:2: not valid YAML"),
    ({"environment.yml": "name: x\nbogus: 1\n"}, "environment.yml:2: unknown key 'bogus'"),
    ({"environment.yml": "dependencies:\n  - python=3.10\n", "runtime.txt": "python-3.11\n"},
     "environment.yml:2: python 3.10 here, but runtime.txt:1 asks for python 3.11"),
    ({"install.R": "install.packages('x')\n"}, "install.R:1: R environments are not built"),
    ({"binder__Dockerfile": "FROM x\n"}, "binder/Dockerfile:1: a Dockerfile replaces the Binder files"),
    ({"postBuild": "# nothing\n\n"}, "postBuild:1: an empty script"),
])
def test_bad_files_name_file_and_line(tmp_path, files, message):
    repo = repo_with(tmp_path, **files)
    with pytest.raises(BinderFileError) as e:
        binderfiles.read(repo)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_not_utf8_and_too_big(tmp_path):
    repo = repo_with(tmp_path)
    (repo / "requirements.txt").write_bytes(b"six\n\xff\xfe\n")
    with pytest.raises(BinderFileError, match=r"^requirements.txt:2: not UTF-8 text$"):
        binderfiles.read(repo)
    (repo / "requirements.txt").write_bytes(b"#" * (binderfiles.MAX_FILE + 1))
    with pytest.raises(BinderFileError, match="larger than"):
        binderfiles.read(repo)


def test_binder_dir_wins_and_both_refused(tmp_path):
    repo = repo_with(tmp_path, **{"requirements.txt": "not valid!\n", "binder__requirements.txt": "six==1.16.0\n",
                                  "binder__apt.txt": "curl git\n", "binder__postBuild": "echo hi\n"})
    cfg = binderfiles.read(repo)
    assert cfg.config_dir == repo / "binder"
    assert cfg.requirements.names == ["six"] and cfg.apt == ["curl", "git"]
    text = binder.dockerfile(cfg, "base:1")
    assert 'COPY ["binder/requirements.txt", "/srv/repo/binder/requirements.txt"]' in text
    assert "apt-get install -y --no-install-recommends curl git" in text
    assert "RUN chmod +x binder/postBuild && ./binder/postBuild" in text
    (repo / ".binder").mkdir()
    with pytest.raises(BinderFileError, match="both binder/ and .binder/"):
        binderfiles.read(repo)


def test_accepted_forms(tmp_path):
    repo = repo_with(tmp_path, **{
        "requirements.txt": "--index-url https://example.invalid/simple\n-r extra.txt\n"
                            "Six==1.16.0 ; python_version >= '3'  # why\n"
                            "pkg[extra] @ https://example.invalid/pkg-1.0.tar.gz\n"
                            "tabulate==0.9.0 \\\n    --hash=sha256:" + "a" * 64 + "\n",
        "extra.txt": "idna>=3\n",
        "environment.yml": "name: demo\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n"
                           "  - pip:\n    - requests>=2\n",
        "start": "#!/bin/sh\nexec \"$@\"\n"})
    cfg = binderfiles.read(repo)
    assert cfg.requirements.names == ["idna", "six", "pkg", "tabulate"] and cfg.requirements.hashed
    assert cfg.python == "3.11" and cfg.python_from == "environment.yml:4"
    assert cfg.env_pip == ["requests>=2"]
    text = binder.dockerfile(cfg, "base:1")
    assert "'requests>=2'" in text and 'ENTRYPOINT ["/srv/repo/start"]' in text
    assert "sys.version_info" in text  # the Python asked for is checked inside too


def test_cli_print_and_usage_errors(tmp_path):
    repo = repo_with(tmp_path, **{"requirements.txt": "six==\n"})
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(BinderFileError, match="requirements.txt:1"):
        execute(["build", "--binder", "--print", str(repo)], Context(str(tmp_path / "root"), out=out, err=err))
    assert BinderFileError.exit_code == 125
    (repo / "requirements.txt").write_text("six==1.16.0\n")
    execute(["build", "--binder", "--print", str(repo)], Context(str(tmp_path / "root"), out=out, err=err))
    assert out.getvalue().startswith("# generated by `jupybox build --binder`")
    with pytest.raises(Exception, match="a context directory is required"):
        execute(["build"], Context(str(tmp_path / "root"), out=out, err=err))
