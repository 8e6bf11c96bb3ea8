"""docker's --device, --gpus, --shm-size, --ulimit and --security-opt, with real containers: what
each gives inside, what `inspect` shows, and the one-line refusals (exit 125) of what cannot be
honored here."""

from __future__ import annotations

import json
import os
import resource

import pytest

from jupybox import errors
from jupybox.runtime.spec import ContainerSpec

pytestmark = [pytest.mark.root]

STATUS = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr '\\n\\t' '  '; echo"


def ok(out):
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    return out.stdout


def refused(out, *words):
    assert out.returncode == 125, (out.returncode, out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for w in words:
        assert w in out.stderr, out.stderr
    return out.stderr


# -- --device ---------------------------------------------------------------------------------

def test_a_device_is_usable_at_its_new_path(cli):
    out = ok(cli("run", "--rm", "--device", "/dev/null:/dev/mynull", "--device", "/dev/zero:/dev/z:rw",
                 "busybox", "sh", "-c", "echo x > /dev/mynull && echo null-ok; head -c 3 /dev/z | od -An -tx1"))
    assert "null-ok" in out and " 00 00 00" in out


def test_the_node_copies_the_host_nodes_type_numbers_mode_and_owner(cli, tmp_path):
    node = tmp_path / "node"
    os.mknod(node, 0o600 | 0o020000, os.makedev(1, 5))  # a char device, as /dev/zero
    os.chmod(node, 0o620)
    os.chown(node, 1234, 5678)
    out = ok(cli("run", "--rm", "--device", f"{node}:/dev/mine", "busybox", "sh", "-c",
                 "ls -ln /dev/mine; head -c 2 /dev/mine | od -An -tx1"))
    fields = out.split()
    assert fields[0] == "crw--w----" and fields[2:6] == ["1234", "5678", "1,", "5"], out
    assert " 00 00" in out  # opened: a node of its own, not on a nodev mount


def test_device_without_a_container_path_and_in_exec(cli):
    name = "devexec-opt"
    ok(cli("run", "-d", "--name", name, "--device", "/dev/full", "busybox", "sleep", "60"))
    try:
        out = cli("exec", name, "sh", "-c", "(echo x > /dev/full) 2>&1; true")
        assert "No space left on device" in out.stdout, out
    finally:
        cli("rm", "-f", name)


@pytest.mark.parametrize("perms", ["r", "w", "m", "wm", "rm"])
def test_permissions_that_cannot_be_enforced_are_refused(cli, perms):
    refused(cli("run", "--rm", "--device", f"/dev/null:/dev/n:{perms}", "busybox", "true"),
            "cannot be enforced", "rw or rwm")


@pytest.mark.parametrize("value, words", [
    ("/dev/null:/dev/n:rx", ["permissions are r, w and m"]),
    ("/etc/passwd", ["not a device node"]),
    ("/dev", ["a directory"]),
    ("/nonexistent-device", ["No such file or directory"]),
    ("dev/null", ["not an absolute path"]),
    ("/dev/null:/proc/n", ["under /proc"]),
    ("/dev/null:/a:rw:x", ["HOST[:CONTAINER][:PERMS]"]),
])
def test_bad_devices_are_refused(cli, value, words):
    refused(cli("run", "--rm", "--device", value, "busybox", "true"), *words)


def test_gpus_is_refused_saying_what_works(cli):
    refused(cli("run", "--rm", "--gpus", "all", "busybox", "true"), "--gpus is not supported", "--device /dev/nvidia0")


# -- --shm-size -------------------------------------------------------------------------------

def _shm_kib(out: str) -> int:
    return int(out.strip().splitlines()[-1].split()[1])


def test_shm_size(cli):
    assert _shm_kib(ok(cli("run", "--rm", "busybox", "df", "/dev/shm"))) == 65536  # docker's 64m
    assert _shm_kib(ok(cli("run", "--rm", "--shm-size", "128m", "busybox", "df", "/dev/shm"))) == 131072
    assert _shm_kib(ok(cli("run", "--rm", "--shm-size", "1g", "busybox", "df", "/dev/shm"))) == 1 << 20
    assert _shm_kib(ok(cli("run", "--rm", "--shm-size", "0", "busybox", "df", "/dev/shm"))) == 65536


@pytest.mark.parametrize("value", ["-1m", "12q", "m", "-1"])
def test_bad_shm_sizes_are_refused(cli, value):
    refused(cli("run", "--rm", f"--shm-size={value}", "busybox", "true"), "--shm-size")


# -- --ulimit ---------------------------------------------------------------------------------

def test_ulimit_soft_and_hard_in_the_command_and_in_exec(cli):
    out = ok(cli("run", "--rm", "--ulimit", "nofile=1024:2048", "--ulimit", "core=0", "--ulimit", "stack=4194304",
                 "busybox", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c; ulimit -s"))
    assert out.split() == ["1024", "2048", "0", "4096"]  # busybox shows the stack in KiB
    name = "ulimit-exec"
    ok(cli("run", "-d", "--name", name, "--ulimit", "nofile=512", "busybox", "sleep", "60"))
    try:
        assert ok(cli("exec", name, "sh", "-c", "ulimit -n; ulimit -Hn")).split() == ["512", "512"]
    finally:
        cli("rm", "-f", name)


def test_a_hard_limit_above_the_services_own_is_refused(cli):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the service runs with the test's limits
    if hard == resource.RLIM_INFINITY:
        pytest.skip("the hard limit of open files is unlimited here")
    err = refused(cli("run", "--rm", "--ulimit", f"nofile={hard + 1}", "busybox", "true"), "CAP_SYS_RESOURCE")
    assert f"({hard})" in err
    refused(cli("run", "--rm", "--ulimit", "nofile=1:-1", "busybox", "true"), "unlimited", "CAP_SYS_RESOURCE")


@pytest.mark.parametrize("value, words", [
    ("nofile=10:5", ["soft limit must be less than or equal"]),
    ("files=10", ["unknown name 'files'"]),
    ("nofile", ["NAME=SOFT[:HARD]"]),
    ("nofile=ten", ["not a whole number"]),
    ("nofile=-2", ["out of range"]),
])
def test_bad_ulimits_are_refused(cli, value, words):
    refused(cli("run", "--rm", "--ulimit", value, "busybox", "true"), *words)


def test_a_repeated_ulimit_is_refused(cli):
    refused(cli("run", "--rm", "--ulimit", "nofile=10", "--ulimit", "nofile=20", "busybox", "true"), "given twice")


# -- --security-opt ---------------------------------------------------------------------------

def test_no_new_privileges(cli):
    assert "NoNewPrivs: 1" in ok(cli("run", "--rm", "busybox", "sh", "-c", STATUS))
    out = ok(cli("run", "--rm", "--security-opt", "no-new-privileges=false", "busybox", "sh", "-c", STATUS))
    assert "NoNewPrivs: 0" in out and "Seccomp: 2" in out  # the filter is still loaded (before the caps go)
    assert "NoNewPrivs: 0" in ok(cli("run", "--rm", "--privileged", "busybox", "sh", "-c", STATUS))
    for opt in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
        assert "NoNewPrivs: 1" in ok(cli("run", "--rm", "--privileged", "--security-opt", opt, "busybox", "sh", "-c",
                                         STATUS))


def test_seccomp_unconfined_and_apparmor_unconfined(cli):
    out = ok(cli("run", "--rm", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                 "busybox", "sh", "-c", STATUS))
    assert "Seccomp: 0" in out and "NoNewPrivs: 1" in out


PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                        {"name": "chroot", "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}


def test_a_docker_seccomp_profile_is_loaded(cli, tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(PROFILE))
    out = cli("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "sh", "-c",
              f"{STATUS}; mkdir /tmp/d; chroot / true; touch /tmp/f && echo touch-ok")
    assert "Seccomp: 2" in out.stdout and "touch-ok" in out.stdout, out
    assert "mkdir: can't create directory '/tmp/d': Permission denied" in out.stderr, out.stderr
    assert "Function not implemented" in out.stderr, out.stderr  # chroot: errnoRet 38 (ENOSYS)
    # without the profile both work: the profile is what refused them
    out = ok(cli("run", "--rm", "busybox", "sh", "-c", "mkdir /tmp/d && echo mkdir-ok"))
    assert "mkdir-ok" in out


@pytest.mark.parametrize("content, words", [
    ("not json", ["not JSON"]),
    (json.dumps({"syscalls": []}), ["defaultAction"]),
    (json.dumps({"defaultAction": "SCMP_ACT_NOTIFY"}), ["defaultAction", "SCMP_ACT_ALLOW"]),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}), ["not supported"]),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}), ["not supported"]),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}),
     ["names no system call"]),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                                  "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
     ["index"]),
    ("{" + " " * (1 << 20) + "}", ["larger than 1024 KiB"]),
])
def test_bad_seccomp_profiles_are_refused(cli, tmp_path, content, words):
    path = tmp_path / "profile.json"
    path.write_text(content)
    refused(cli("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "true"), "seccomp profile", *words)


@pytest.mark.parametrize("opt, words", [
    ("label=disable", ["unsupported --security-opt", "no-new-privileges"]),
    ("systempaths=unconfined", ["unsupported --security-opt"]),
    ("apparmor=docker-default", ["no AppArmor profile"]),
    ("no-new-privileges=yes", ["true or false"]),
    ("seccomp=/nonexistent.json", ["No such file or directory"]),
])
def test_other_security_opts_are_refused(cli, opt, words):
    refused(cli("run", "--rm", "--security-opt", opt, "busybox", "true"), *words)


# -- inspect, the API, the wire, the magic's parser -------------------------------------------

def test_inspect_shows_them_as_docker_names_them(cli, tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(PROFILE))
    name = "hostcfg"
    ok(cli("create", "--name", name, "--device", "/dev/null:/dev/n:rw", "--shm-size", "256m", "--ulimit",
           "nofile=100:200", "--security-opt", "no-new-privileges", "--security-opt", f"seccomp={path}",
           "busybox", "true"))
    try:
        host = json.loads(ok(cli("inspect", name)))[0]["HostConfig"]
    finally:
        cli("rm", "-f", name)
    assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rw"}]
    assert host["ShmSize"] == 256 << 20
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 100, "Hard": 200}]
    assert host["SecurityOpt"][0] == "no-new-privileges=true"
    assert json.loads(host["SecurityOpt"][1].partition("=")[2]) == PROFILE  # the profile, as docker keeps it
    cid = ok(cli("create", "busybox", "true")).strip()
    try:
        defaults = json.loads(ok(cli("inspect", cid)))[0]["HostConfig"]
    finally:
        cli("rm", "-f", cid)
    assert defaults["ShmSize"] == 64 << 20 and defaults["Devices"] == [] and defaults["SecurityOpt"] is None


def test_the_api_takes_them(runner):
    code, out, err = runner.sh("busybox", "ulimit -n; df /dev/shm | tail -1; echo x > /dev/n && echo n-ok",
                               ulimits={"nofile": "300:400"}, shm_size="32m", devices=["/dev/null:/dev/n"],
                               security_opt=["no-new-privileges"], remove=True)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "300" and lines[1].split()[1] == "32768" and lines[2] == "n-ok"


@pytest.mark.parametrize("field, value, words", [
    ("devices", [{"path_on_host": "/dev/null", "permissions": "r"}], "cannot be enforced"),
    ("devices", [{"path_on_host": "/etc/passwd"}], "not a device node"),
    ("ulimits", [{"name": "nofile", "soft": 1, "hard": 2**40}], "CAP_SYS_RESOURCE"),
    ("security_opt", ["seccomp=/etc/profile.json"], "JSON is expected here"),
    ("security_opt", ['seccomp={"defaultAction": "SCMP_ACT_NOTIFY"}'], "seccomp profile"),
])
def test_a_spec_from_the_wire_is_checked_again(runner, field, value, words):
    spec = ContainerSpec.from_dict({"image": "busybox", "command": ["true"], field: value})
    with pytest.raises(errors.UsageError, match=words):
        runner.engine.container_config(spec)


def test_the_container_magic_shares_the_parser():
    pytest.importorskip("IPython")
    from jupybox.cli.parser import split_command
    from jupybox.cli.run import options_from_args
    from jupybox.jupyter.magics import cell_parser
    from jupybox.runtime.options import make_spec

    parser = cell_parser()
    head, command = split_command(parser, ["--device", "/dev/null:/dev/n", "--shm-size", "1g", "--ulimit",
                                           "nofile=10:20", "--security-opt", "seccomp=unconfined", "busybox", "true"],
                                  positionals=1)
    spec = make_spec("busybox", command, **options_from_args(parser.parse_args(head)))
    assert spec.devices == [{"path_on_host": "/dev/null", "path_in_container": "/dev/n", "permissions": "rwm"}]
    assert spec.shm_size == 1 << 30 and spec.ulimits == [{"name": "nofile", "soft": 10, "hard": 20}]
    assert spec.security_opt == ["seccomp=unconfined"]
    head, _ = split_command(parser, ["--gpus", "all", "busybox"], positionals=1)
    with pytest.raises(errors.UsageError, match="--gpus is not supported"):
        make_spec("busybox", [], **options_from_args(parser.parse_args(head)))
