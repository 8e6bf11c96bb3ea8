"""What a container is isolated from, checked from inside real containers (root only)."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.root]

BB = "busybox:latest"


def status_field(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in {text!r}")


def test_pid1_is_the_command_without_init(runner):
    code, out, _ = runner.sh(BB, "echo $$", init=False)
    assert (code, out.strip()) == (0, "1")


def test_init_is_pid1_and_command_pid2(runner):
    code, out, _ = runner.sh(BB, "echo $$; ls /proc | grep -c '^[0-9]*$'")
    pid, count = out.split()
    assert code == 0 and pid == "2"
    assert int(count) <= 4  # init, sh, ls, grep: not the host's hundreds


def test_host_pids_are_not_visible(runner):
    code, out, _ = runner.sh(BB, f"test -e /proc/{os.getpid()}/status && echo visible || echo hidden")
    assert out.strip() == "hidden"


def test_own_hostname(runner):
    assert runner.sh(BB, "hostname", hostname="box1")[1].strip() == "box1"
    code, out, _, (state, rec) = runner.run(BB, ["hostname"], keep=True)
    assert out.strip() == rec.id[:12]
    runner.engine.remove(rec)


def test_capabilities_are_dockers_14(runner):
    _, out, _ = runner.sh(BB, "cat /proc/self/status")
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert status_field(out, key) == "00000000a80425fb", key
    assert status_field(out, "CapInh") == "0000000000000000"
    assert status_field(out, "CapAmb") == "0000000000000000"


def test_cap_drop_and_add(runner):
    _, out, _ = runner.sh(BB, "cat /proc/self/status", cap_drop=["NET_RAW", "chown"], cap_add=["SYS_PTRACE"])
    eff = int(status_field(out, "CapEff"), 16)
    assert not eff & (1 << 13) and not eff & (1 << 0)  # NET_RAW, CHOWN
    assert eff & (1 << 19)  # SYS_PTRACE


def test_non_root_user_has_no_effective_caps(runner):
    _, out, _ = runner.sh(BB, "id -u; cat /proc/self/status", user="1000:1000")
    assert out.splitlines()[0] == "1000"
    assert status_field(out, "CapEff") == "0000000000000000"
    assert status_field(out, "CapBnd") == "00000000a80425fb"


def test_no_new_privs_and_seccomp(runner):
    _, out, _ = runner.sh(BB, "cat /proc/self/status")
    assert status_field(out, "NoNewPrivs") == "1"
    assert status_field(out, "Seccomp") == "2"


def test_privileged_opts_out(runner):
    _, out, _ = runner.sh(BB, "cat /proc/self/status; wc -c < /proc/kcore 2>&1 | head -c 20", privileged=True)
    assert status_field(out, "Seccomp") == "0"
    assert int(status_field(out, "CapEff"), 16) & (1 << 21)  # SYS_ADMIN


MASKED_FILES = ("/proc/kcore", "/proc/interrupts", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")


def test_masked_proc_files_read_empty(runner):
    present = [p for p in MASKED_FILES if os.path.exists(p) and os.path.getsize(p) == 0 and open(p, "rb").read(1)]
    assert present, "no masked /proc file with content on this host to compare with"
    script = "; ".join(f"wc -c < {p}" for p in present)
    _, out, _ = runner.sh(BB, script)
    assert out.split() == ["0"] * len(present)


def test_proc_sys_readonly_and_masked_dirs_empty(runner):
    code, out, err = runner.sh(
        BB, "echo x > /proc/sys/kernel/domainname && echo wrote || echo refused; "
            "ls /proc/acpi 2>/dev/null | wc -l; ls /sys/firmware | wc -l")
    assert out.split() == ["refused", "0", "0"]


def test_mount_is_refused(runner):
    code, out, err = runner.sh(BB, "mkdir -p /mnt/x && mount -t tmpfs none /mnt/x && echo mounted || echo refused")
    assert out.strip() == "refused"


def test_unshare_is_refused(runner):
    code, out, _ = runner.sh(BB, "unshare -n true && echo ok || echo refused")
    assert out.strip() == "refused"


def test_network_none_has_only_lo_up(runner):
    _, out, _ = runner.sh(BB, "ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-ok",
                         network="none")
    assert out.split()[0] == "lo" and "lo-ok" in out


def test_dev_is_small_tmpfs(runner):
    _, out, _ = runner.sh(BB, "ls /dev | sort | tr '\\n' ' '; head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo ok")
    names = set(out.split())
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx", "fd"):
        assert dev in names, dev
    assert "sda" not in names and "vda" not in names and "kmsg" not in names
    assert "ok" in out


def test_sys_is_readonly_and_cgroup_visible(runner):
    _, out, _ = runner.sh(BB, "touch /sys/x 2>/dev/null && echo rw || echo ro; cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
                          memory="64m")
    assert out.split() == ["ro", str(64 * 1024 * 1024)]


def test_etc_files_are_generated_not_written_into_the_image(runner, busybox_image):
    _, out, _ = runner.sh(BB, "cat /etc/hostname; grep -c localhost /etc/hosts", hostname="h1")
    assert out.split() == ["h1", "2"]


def test_readonly_rootfs(runner):
    _, out, _ = runner.sh(BB, "touch /x 2>/dev/null && echo rw || echo ro; touch /tmp/y && echo tmp-rw",
                          read_only=True, tmpfs=["/tmp"])
    assert out.split() == ["ro", "tmp-rw"]


def test_writes_land_in_the_write_layer_only(runner, busybox_image):
    code, out, err, (state, rec) = runner.run(BB, ["sh", "-c", "echo hi > /hello; rm /bin/ls"], keep=True)
    assert code == 0
    assert (rec.upper / "hello").read_text() == "hi\n"
    # the deletion is a whiteout in the upper dir; the image layer still has ls
    assert os.stat(rec.upper / "bin" / "ls").st_rdev == 0
    runner.engine.remove(rec)
    code, out, _ = runner.sh(BB, "ls /hello 2>/dev/null || echo gone; test -e /bin/ls && echo ls-back")
    assert out.split() == ["gone", "ls-back"]


def test_chroot_breakout_fails_in_a_container(runner, tmp_path):
    """The classic escape: chroot into a subdir while holding a cwd outside it, walk up, chroot '.'.

    With pivot_root and the old root unmounted there is nothing above the container's root."""
    marker = tmp_path / "host-marker"
    marker.write_text("host")
    script = (
        "import os\n"
        "os.makedirs('/tmp/jail', exist_ok=True)\n"
        "fd = os.open('/', os.O_RDONLY)\n"
        "os.chroot('/tmp/jail')\n"
        "os.fchdir(fd)\n"
        "for _ in range(64):\n"
        "    os.chdir('..')\n"
        "os.chroot('.')\n"
        f"print('escaped' if os.path.exists({str(marker)!r}) else 'contained')\n"
    )
    code, out, err, _ = runner.run("host", ["python3", "-c", script])
    assert code == 0, err
    assert out.strip() == "contained"
