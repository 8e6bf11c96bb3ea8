"""``jupybox kernel install | list | remove`` and the kernelspecs they write (no kernel is started)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupyter_client")

from jupybox import errors  # noqa: E402
from jupybox.cli import Context, execute  # noqa: E402
from jupybox.jupyter import kernelspec  # noqa: E402

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def prefix(tmp_path, monkeypatch):
    """A private Jupyter prefix on JUPYTER_PATH, and a private jupybox root."""
    p = tmp_path / "prefix"
    monkeypatch.setenv("JUPYTER_PATH", str(p / "share" / "jupyter"))
    monkeypatch.setenv("JUPYBOX_ROOT", str(tmp_path / "jbx"))
    return p


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(out=out, err=err)
    try:
        code = execute(list(argv), ctx)
    except errors.JupyboxError as e:
        print(f"jupybox: {e}", file=err)
        code = e.exit_code
    return code, out.getvalue(), err.getvalue()


def spec_of(prefix: Path, name: str) -> dict:
    return json.loads((prefix / "share" / "jupyter" / "kernels" / name / "kernel.json").read_text())


def test_install_writes_a_spec_that_selects_the_provisioner(prefix, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    code, out, err = cli("kernel", "install", "--name", "Py-2G", "-m", "2g", "--cpus", "1", "--pids-limit", "500",
                         "-v", f"{data}:/data:ro", "-e", "FOO=bar", "--network", "none", "--prefix", str(prefix))
    assert code == 0, err
    assert "Installed kernelspec py-2g" in out
    spec = spec_of(prefix, "py-2g")
    assert spec["argv"] == ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["language"] == "python"
    assert spec["interrupt_mode"] == "signal"
    assert spec["env"] == {"FOO": "bar"}
    assert spec["display_name"] == "Python 3 (jupybox: host, 2 GB, 1 CPU, no network)"
    prov = spec["metadata"]["kernel_provisioner"]
    assert prov["provisioner_name"] == "jupybox-provisioner"
    assert prov["config"] == {"image": "host", "memory": "2g", "cpus": 1.0, "pids_limit": 500,
                              "volumes": [f"{data}:/data:ro"], "network": "none", "mount_cwd": True,
                              "root": str(tmp_path / "jbx")}
    assert (prefix / "share" / "jupyter" / "kernels" / "py-2g" / "logo-64x64.png").exists()


def test_jupyter_lists_the_spec_and_the_provisioner(prefix):
    assert cli("kernel", "install", "--name", "jbx-listed", "--display-name", "Boxed", "--prefix", str(prefix))[0] == 0
    env = dict(os.environ)
    listed = subprocess.run([str(VENV_BIN / "jupyter"), "kernelspec", "list", "--json"], env=env,
                            capture_output=True, text=True, check=True)
    specs = json.loads(listed.stdout)["kernelspecs"]
    assert specs["jbx-listed"]["spec"]["display_name"] == "Boxed"
    assert specs["jbx-listed"]["spec"]["metadata"]["kernel_provisioner"]["provisioner_name"] == "jupybox-provisioner"
    provs = subprocess.run([str(VENV_BIN / "jupyter"), "kernelspec", "provisioners"], env=env,
                           capture_output=True, text=True, check=True)
    line = next(ln for ln in provs.stdout.splitlines() if "jupybox-provisioner" in ln)
    assert "jupybox.jupyter.provisioner:JupyboxProvisioner" in line
    # and jupyter_client can build the provisioner from the spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.provisioning import KernelProvisionerFactory

    ks = KernelSpecManager().get_kernel_spec("jbx-listed")
    assert KernelProvisionerFactory.instance().is_provisioner_available(ks)


def test_list_and_remove(prefix):
    for name in ("jbx-a", "jbx-b"):
        assert cli("kernel", "install", "--name", name, "-m", "512m", "--prefix", str(prefix))[0] == 0
    # a plain kernelspec in the same place is not ours
    plain = prefix / "share" / "jupyter" / "kernels" / "plain"
    plain.mkdir(parents=True)
    (plain / "kernel.json").write_text(json.dumps({"argv": ["python3", "-m", "ipykernel_launcher", "-f",
                                                            "{connection_file}"], "display_name": "plain",
                                                   "language": "python"}))
    code, out, _ = cli("kernel", "list")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["NAME", "IMAGE", "MEMORY", "CPUS", "NETWORK", "PATH"]
    assert [r.split()[:3] for r in rows[1:]] == [["jbx-a", "host", "512MiB"], ["jbx-b", "host", "512MiB"]]
    code, out, _ = cli("kernel", "list", "--format", "json")
    assert [k["name"] for k in json.loads(out)] == ["jbx-a", "jbx-b"]
    assert cli("kernel", "ls", "-q")[1].split() == ["jbx-a", "jbx-b"]

    code, out, err = cli("kernel", "remove", "jbx-a")
    assert code == 0 and out.strip() == "jbx-a"
    assert not (prefix / "share" / "jupyter" / "kernels" / "jbx-a").exists()
    code, out, err = cli("kernel", "rm", "plain", "nope", "jbx-b")
    assert code == 1
    assert "kernel plain is not a jupybox kernel" in err
    assert "no such kernel: nope" in err
    assert plain.exists()  # refused
    assert out.split() == ["jbx-b"]
    assert cli("kernel", "list", "-q")[1] == ""


@pytest.mark.parametrize("argv, message", [
    (["-m", "2x"], "invalid memory limit: '2x'"),
    (["-m", "1m"], "minimum allowed is 6MB"),
    (["--cpus", "abc"], "invalid argument 'abc' for --cpus"),
    (["--cpus", "0"], "range of CPUs is from 0.01"),
    (["--cpus", "100000"], "range of CPUs is from 0.01"),
    (["--pids-limit", "0"], "invalid pids limit 0"),
    (["--pids-limit", "many"], "invalid argument 'many' for --pids-limit"),
    (["--memory-swap", "1g"], "memory limit when using the memory-swap limit"),
    (["-m", "1g", "--memory-swap", "512m"], "should be larger than the memory limit"),
    (["-v", "/no/such/dir:/data"], "bind source path does not exist"),
    (["-v", "a:b:c:d"], "invalid volume specification"),
    (["-e", "=x"], "invalid environment variable"),
    (["--mount-cwd", "relative/path"], "invalid mount_cwd"),
])
def test_bad_settings_fail_up_front(prefix, argv, message):
    code, out, err = cli("kernel", "install", "--name", "jbx-bad", *argv, "--prefix", str(prefix))
    assert code == 125
    assert message in err
    assert len(err.strip().splitlines()) == 1  # one line
    assert not (prefix / "share" / "jupyter" / "kernels" / "jbx-bad").exists()


def test_bad_names_and_locations(prefix):
    code, _, err = cli("kernel", "install", "--name", "bad name!", "--prefix", str(prefix))
    assert code == 125 and "invalid kernel name 'bad name!'" in err
    code, _, err = cli("kernel", "install", "--name", "x", "--user", "--prefix", str(prefix))
    assert code == 125 and "not allowed with argument" in err
    code, _, err = cli("kernel", "install", "--name", "x", "--network", "bridge", "--prefix", str(prefix))
    assert code == 125 and "invalid choice: 'bridge'" in err


def test_unknown_image_is_a_warning_at_install(prefix):
    code, out, err = cli("kernel", "install", "--name", "jbx-later", "--image", "not-yet:1", "--prefix", str(prefix))
    assert code == 0
    assert "image 'not-yet:1' is not in the store yet" in err
    assert spec_of(prefix, "jbx-later")["metadata"]["kernel_provisioner"]["config"]["image"] == "not-yet:1"


def test_install_outside_the_jupyter_path_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    monkeypatch.setenv("JUPYBOX_ROOT", str(tmp_path / "jbx"))
    code, out, err = cli("kernel", "install", "--name", "jbx-hidden", "--prefix", str(tmp_path / "elsewhere"))
    assert code == 0
    assert "is not in Jupyter's kernel path" in err and "JUPYTER_PATH" in err


def test_validate_config_normalizes():
    cfg = kernelspec.validate_config({"memory": "-1", "pids_limit": "-1", "cpus": "0.5", "mount_cwd": "false"})
    assert cfg == {"image": "host", "cpus": 0.5, "network": "host", "mount_cwd": False}
    cfg = kernelspec.validate_config({"mount_cwd": "/work", "env": ["A=1"], "start_timeout": "30"})
    assert cfg["mount_cwd"] == "/work" and cfg["env"] == {"A": "1"} and cfg["start_timeout"] == 30.0
    with pytest.raises(errors.UsageError, match="unknown jupybox kernel setting"):
        kernelspec.validate_config({"memroy": "1g"})
    with pytest.raises(errors.InvalidSize):
        kernelspec.validate_config({"memory": "1 gigabyte"})
    with pytest.raises(errors.UsageError, match="network 'bridge' is not supported"):
        kernelspec.validate_config({"network": "bridge"})


def test_the_cli_verb_is_registered(capsys):
    assert cli("kernel", "install", "--help")[0] == 0
    assert "--pids-limit" in capsys.readouterr().out
    assert cli("--help")[0] == 0
    assert "Manage Jupyter kernels that run in a container" in capsys.readouterr().out
