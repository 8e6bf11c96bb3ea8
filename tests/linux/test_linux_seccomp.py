"""jupybox.linux.seccomp: docker's default profile compiled with libseccomp, cached, loaded by prctl.

Two kinds of checks: the compiled program is run through a small classic-BPF interpreter (so every
syscall, architecture and argument can be judged without making dangerous calls), and the filter is
really loaded in forked children (the test process itself is never filtered).
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import struct
import subprocess

import pytest

from jupybox.linux import caps as C
from jupybox.linux import seccomp as S
from jupybox.linux import seccomp_profile as P
from jupybox.linux import syscalls as sc

ROOT_REASON = "needs root (to prove EPERM comes from the filter)"


def needs_root(test):
    """The project's ``root`` marker, plus a skip that says why."""
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_REASON)(test))


try:
    S.libseccomp_version()
except OSError as e:  # pragma: no cover
    pytest.skip(f"libseccomp.so.2 not available: {e}", allow_module_level=True)

ALLOW = 0x7FFF0000
EPERM_RET = 0x00050000 | errno.EPERM
ENOSYS_RET = 0x00050000 | errno.ENOSYS
DEFAULT = frozenset(C.DOCKER_DEFAULT_CAPS)
SYS_ADMIN = C.CAP_NUMBERS["CAP_SYS_ADMIN"]
AF_VSOCK = 40
SIGCHLD = 17
NATIVE = {"x86_64": "x86_64", "aarch64": "aarch64"}[sc.MACHINE]
COMPAT = {"x86_64": "x86", "aarch64": "arm"}[sc.MACHINE]
GOARCH = P.GOARCH[sc.MACHINE]


# ---- a classic BPF interpreter, enough for seccomp programs ----
_decoded: dict[bytes, list] = {}


def run_bpf(prog: bytes, nr: int, arch: int, args=(0, 0, 0, 0, 0, 0)) -> int:
    data = struct.pack("=iIQ6Q", nr, arch, 0x1000, *(list(args) + [0] * (6 - len(args))))
    insns = _decoded.get(prog)
    if insns is None:
        insns = _decoded[prog] = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    for _ in range(100_000):
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            mode, size = code & 0xE0, code & 0x18
            if mode == 0x20 and size == 0x00:
                a = struct.unpack_from("=I", data, k)[0]
            elif mode == 0x00:
                a = k
            elif mode == 0x60:
                a = mem[k]
            elif mode == 0x80:
                a = len(data)
            else:
                raise AssertionError(f"unsupported LD {code:#x}")
        elif cls == 0x01:  # LDX
            mode = code & 0xE0
            x = k if mode == 0x00 else mem[k] if mode == 0x60 else len(data) if mode == 0x80 else None
            assert x is not None, f"unsupported LDX {code:#x}"
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            op, src = code & 0xF0, (x if code & 0x08 else k)
            ops = {0x00: lambda: a + src, 0x10: lambda: a - src, 0x20: lambda: a * src,
                   0x40: lambda: a | src, 0x50: lambda: a & src, 0x60: lambda: a << src,
                   0x70: lambda: a >> src, 0x80: lambda: -a, 0xA0: lambda: a ^ src}
            assert op in ops, f"unsupported ALU {code:#x}"
            a = ops[op]() & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            op, src = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x00:
                pc += k
                continue
            cond = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # RET
            return a if code & 0x18 == 0x10 else k
        elif cls == 0x07:  # MISC
            if code == 0x07:
                x = a
            elif code == 0x87:
                a = x
            else:
                raise AssertionError(f"unsupported MISC {code:#x}")
    raise AssertionError("BPF program did not return")


def judge(prog, name, args=(0,), arch=None):
    """What the program does with syscall ``name`` on ``arch`` (libseccomp arch name; None = native)."""
    nr = S.resolve_syscall(name, arch or NATIVE)
    assert nr is not None, f"{name} does not exist on {arch or NATIVE}"
    token = S.arch_token("x86_64" if arch == "x32" else (arch or NATIVE))
    return run_bpf(prog, nr, token, args)


def test_interpreter_sanity():
    allow_all = struct.pack("=HBBI", 0x06, 0, 0, ALLOW)
    assert run_bpf(allow_all, 0, 0) == ALLOW
    # ld arch; jeq 7 ? ret 1 : ret 2
    prog = struct.pack("=HBBI", 0x20, 0, 0, 4) + struct.pack("=HBBI", 0x15, 0, 1, 7) + \
        struct.pack("=HBBI", 0x06, 0, 0, 1) + struct.pack("=HBBI", 0x06, 0, 0, 2)
    assert run_bpf(prog, 0, 7) == 1 and run_bpf(prog, 0, 8) == 2


# ---- the profile data ----
def test_profile_shape():
    first = P.SYSCALLS[0]
    assert first["action"] == "SCMP_ACT_ALLOW" and "includes" not in first and "args" not in first
    assert len(first["names"]) == len(set(first["names"])) == 361
    assert {"read", "write", "openat", "execve", "fork", "vfork", "wait4", "mseal"} <= set(first["names"])
    dangerous = {"io_uring_setup", "io_uring_enter", "io_uring_register",  # moby#46762 (docker v25)
                 "mount", "umount2", "unshare", "setns", "clone", "clone3", "ptrace", "reboot", "kexec_load",
                 "init_module", "bpf", "perf_event_open", "keyctl", "add_key", "pivot_root", "chroot", "acct",
                 "settimeofday", "swapon", "open_by_handle_at", "socket", "personality", "userfaultfd"}
    assert not dangerous & set(first["names"])
    assert P.DEFAULT_ACTION == "SCMP_ACT_ERRNO" and P.DEFAULT_ERRNO_RET == errno.EPERM
    sys_admin = [e for e in P.SYSCALLS if e.get("includes", {}).get("caps") == ["CAP_SYS_ADMIN"]][0]
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "sethostname"} <= set(sys_admin["names"])
    assert {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_NICE",
            "CAP_SYS_PACCT", "CAP_SYS_RAWIO", "CAP_SYSLOG", "CAP_DAC_READ_SEARCH", "CAP_BPF",
            "CAP_PERFMON"} <= P.RELEVANT_CAPS


def test_every_profile_name_is_known_to_libseccomp_or_reported():
    S.compile_filter(DEFAULT)
    names = {n for e in P.SYSCALLS for n in e["names"]}
    unknown = {n for n in names if S.resolve_syscall(n) is None and all(
        S.resolve_syscall(n, a) is None for a in P.ARCH_MAP[sc.MACHINE])}
    # names of other architectures (s390, ppc, riscv) exist in libseccomp's tables but not here
    assert S.unknown_syscalls() <= unknown


# ---- the compiled program's decisions ----
@pytest.fixture(scope="module")
def default_prog():
    return S.compile_filter(DEFAULT)


def test_program_is_bpf(default_prog):
    assert isinstance(default_prog, bytes)
    assert len(default_prog) % 8 == 0 and 0 < len(default_prog) // 8 <= S.BPF_MAXINSNS
    assert struct.unpack_from("=HBBI", default_prog, 0) == (0x20, 0, 0, 4)  # first: load seccomp_data.arch


def test_allowlist_is_allowed_everything_else_is_eperm(default_prog):
    allowed = [n for n in P.SYSCALLS[0]["names"] if S.resolve_syscall(n, NATIVE) is not None]
    assert len(allowed) > 250
    for name in allowed:
        assert judge(default_prog, name) == ALLOW, name
    for name in ("mount", "umount2", "unshare", "setns", "reboot", "kexec_load", "init_module", "bpf",
                 "perf_event_open", "keyctl", "add_key", "pivot_root", "acct", "settimeofday", "swapon",
                 "open_by_handle_at", "sethostname", "kcmp", "userfaultfd"):
        assert judge(default_prog, name) == EPERM_RET, name
    assert run_bpf(default_prog, 1000, S.arch_token(NATIVE)) == EPERM_RET  # unknown number
    # a foreign architecture is killed, not judged
    assert run_bpf(default_prog, 0, 0xDEADBEEF) in (0x00000000, 0x80000000)


def test_conditional_entries(default_prog):
    assert judge(default_prog, "clone", (SIGCHLD,)) == ALLOW
    assert judge(default_prog, "clone", (0x003D0F00,)) == ALLOW  # pthread_create's flags
    for flag in (sc.CLONE_NEWNS, sc.CLONE_NEWUTS, sc.CLONE_NEWIPC, sc.CLONE_NEWUSER, sc.CLONE_NEWPID,
                 sc.CLONE_NEWNET, sc.CLONE_NEWCGROUP):
        assert judge(default_prog, "clone", (flag | SIGCHLD,)) == EPERM_RET, hex(flag)
    assert judge(default_prog, "clone3") == ENOSYS_RET
    assert judge(default_prog, "socket", (socket.AF_INET,)) == ALLOW
    assert judge(default_prog, "socket", (socket.AF_UNIX,)) == ALLOW
    assert judge(default_prog, "socket", (AF_VSOCK,)) == EPERM_RET
    for persona in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert judge(default_prog, "personality", (persona,)) == ALLOW, hex(persona)
    assert judge(default_prog, "personality", (0x0040000,)) == EPERM_RET  # ADDR_NO_RANDOMIZE
    assert judge(default_prog, "ptrace") == ALLOW  # minKernel 4.8
    assert judge(default_prog, "chroot") == ALLOW  # CAP_SYS_CHROOT is a default cap
    if GOARCH == "amd64":
        assert judge(default_prog, "arch_prctl") == ALLOW
        assert judge(default_prog, "modify_ldt") == ALLOW
    else:
        assert judge(default_prog, "set_tls", arch=COMPAT) == ALLOW


def test_compat_architectures_are_filtered_too(default_prog):
    assert judge(default_prog, "read", arch=COMPAT) == ALLOW
    assert judge(default_prog, "mount", arch=COMPAT) == EPERM_RET
    assert judge(default_prog, "clone", (sc.CLONE_NEWUSER | SIGCHLD,), arch=COMPAT) == EPERM_RET
    if sc.MACHINE == "x86_64":
        assert judge(default_prog, "socketcall", arch="x86") == ALLOW
        assert judge(default_prog, "read", arch="x32") == ALLOW
        assert judge(default_prog, "unshare", arch="x32") == EPERM_RET


@pytest.mark.parametrize("entry", [e for e in P.SYSCALLS if e.get("includes", {}).get("caps")],
                         ids=lambda e: e["includes"]["caps"][0])
def test_each_capability_group(entry):
    """A cap's syscalls are allowed with it and refused without it (unless allowed by another entry)."""
    cap = C.CAP_NUMBERS[entry["includes"]["caps"][0]]
    if cap > C.LAST_CAP:
        pytest.skip(f"kernel does not know {entry['includes']['caps'][0]}")
    base = DEFAULT - {cap}
    with_cap = S.compile_filter(base | {cap})
    without = S.compile_filter(base)
    other = {n for e in P.SYSCALLS if e is not entry and not e.get("includes", {}).get("caps")
             and not e.get("args") and S._applies(e, frozenset(C.cap_names(base)), GOARCH, S._kernel_version())
             for n in e["names"]}
    checked = 0
    for name in entry["names"]:
        if S.resolve_syscall(name, NATIVE) is None:
            continue
        assert judge(with_cap, name, (SIGCHLD,)) == ALLOW, name
        if name not in other and name != "clone":
            assert judge(without, name) == EPERM_RET, name
        checked += 1
    assert checked or GOARCH not in ("amd64", "arm64")


def test_sys_admin_lifts_the_namespace_rules():
    prog = S.compile_filter(DEFAULT | {SYS_ADMIN})
    assert judge(prog, "clone", (sc.CLONE_NEWUSER | sc.CLONE_NEWNS | SIGCHLD,)) == ALLOW
    assert judge(prog, "clone3") == ALLOW
    assert judge(prog, "mount") == judge(prog, "unshare") == judge(prog, "setns") == ALLOW
    assert judge(prog, "reboot") == EPERM_RET  # that needs CAP_SYS_BOOT


def test_tree_and_list_layouts_decide_the_same():
    """The binary-tree layout (OPTIMIZE=2) must judge exactly like libseccomp's default layout."""
    for caps in (DEFAULT, DEFAULT | {SYS_ADMIN}, frozenset()):
        tree, flat = S.compile_filter(caps, optimize=2), S.compile_filter(caps, optimize=1)
        assert tree != flat
        arches = [(S.arch_token(NATIVE), 0), (S.arch_token(COMPAT), 0)]
        if sc.MACHINE == "x86_64":
            arches.append((S.arch_token("x86_64"), 0x40000000))
        conditional = {S.resolve_syscall(n, a) for n in ("clone", "clone3", "socket", "personality")
                       for a in P.ARCH_MAP[sc.MACHINE]}
        for token, bit in arches:
            for nr in range(0, 470):
                many = (nr | bit) in conditional or nr in conditional
                for args in ((0,), (SIGCHLD,), (sc.CLONE_NEWUSER | SIGCHLD,), (AF_VSOCK,), (0xFFFFFFFF,),
                             (0x40000,), (0x100000000,))[:7 if many else 2]:
                    assert run_bpf(tree, nr | bit, token, args) == run_bpf(flat, nr | bit, token, args), \
                        (caps, hex(token), nr, args)


# ---- caching ----
def test_memory_cache(monkeypatch):
    S.clear_memory_cache()
    first = S.filter_for(DEFAULT)
    monkeypatch.setattr(S, "compile_filter", lambda *a, **k: pytest.fail("compiled again"))
    assert S.filter_for(set(DEFAULT)) is first
    assert S.filter_for(C.cap_names(DEFAULT)) is first  # names work as well as numbers
    # a capability the profile does not mention does not change the program: shared
    assert S.cache_key(DEFAULT | {C.CAP_NUMBERS["CAP_NET_ADMIN"]}) == S.cache_key(DEFAULT)
    assert S.filter_for(DEFAULT | {C.CAP_NUMBERS["CAP_NET_ADMIN"]}) is first
    assert S.cache_key(DEFAULT | {SYS_ADMIN}) != S.cache_key(DEFAULT)


def _cache_files(d):
    return sorted(os.listdir(d))


def test_disk_cache_written_atomically(tmp_path):
    S.clear_memory_cache()
    prog = S.filter_for(DEFAULT, cache_dir=tmp_path)
    assert _cache_files(tmp_path) == [f"seccomp-{S.cache_key(DEFAULT)}.bpf"]
    blob = (tmp_path / _cache_files(tmp_path)[0]).read_bytes()
    assert blob[:8] == b"JBXSECC1" and blob[8:40] == hashlib.sha256(prog).digest() and blob[40:] == prog
    S.filter_for(DEFAULT | {SYS_ADMIN}, cache_dir=tmp_path)
    assert len(_cache_files(tmp_path)) == 2  # no temporary files left behind


def test_second_process_reads_the_disk_cache_instead_of_compiling(tmp_path, py):
    S.clear_memory_cache()
    prog = S.filter_for(DEFAULT, cache_dir=tmp_path / "cache")
    script = f"""
import hashlib, sys
from jupybox.linux import seccomp as S
from jupybox.linux.caps import DOCKER_DEFAULT_CAPS
def boom(*a, **k):
    raise RuntimeError("compile_filter called")
S.compile_filter = boom
try:
    S.filter_for(DOCKER_DEFAULT_CAPS, cache_dir={str(tmp_path / 'empty')!r})
    print("control: compiled?!")
except RuntimeError as e:
    print("control:", e)
S.set_cache_dir({str(tmp_path / 'cache')!r})
print("sha:", hashlib.sha256(S.filter_for(DOCKER_DEFAULT_CAPS)).hexdigest())
"""
    out = py(script)
    assert out.returncode == 0, out.stderr
    assert "control: compile_filter called" in out.stdout  # the patch really blocks compiling
    assert f"sha: {hashlib.sha256(prog).hexdigest()}" in out.stdout


def test_damaged_cache_file_is_recompiled_and_rewritten(tmp_path):
    S.clear_memory_cache()
    prog = S.filter_for(DEFAULT, cache_dir=tmp_path)
    path = tmp_path / f"seccomp-{S.cache_key(DEFAULT)}.bpf"
    data = bytearray(path.read_bytes())
    data[-4] ^= 0xFF  # flip bits in the program: the checksum must catch it
    path.write_bytes(bytes(data))
    S.clear_memory_cache()
    assert S.filter_for(DEFAULT, cache_dir=tmp_path) == prog
    assert path.read_bytes()[40:] == prog


def test_cache_file_others_could_write_is_not_trusted(tmp_path):
    S.clear_memory_cache()
    prog = S.filter_for(DEFAULT, cache_dir=tmp_path)
    path = tmp_path / f"seccomp-{S.cache_key(DEFAULT)}.bpf"
    allow_all = struct.pack("=HBBI", 0x06, 0, 0, ALLOW)
    path.write_bytes(b"JBXSECC1" + hashlib.sha256(allow_all).digest() + allow_all)  # well-formed, planted
    os.chmod(path, 0o666)
    S.clear_memory_cache()
    assert S.filter_for(DEFAULT, cache_dir=tmp_path) == prog
    assert path.read_bytes()[40:] == prog and path.stat().st_mode & 0o022 == 0  # replaced
    # control: the planted file, writable only by us, is taken as it is (the cache is trusted then)
    path.write_bytes(b"JBXSECC1" + hashlib.sha256(allow_all).digest() + allow_all)
    os.chmod(path, 0o644)
    S.clear_memory_cache()
    assert S.filter_for(DEFAULT, cache_dir=tmp_path) == allow_all
    S.clear_memory_cache()


def test_unwritable_cache_dir_is_not_an_error(tmp_path):
    S.clear_memory_cache()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert S.filter_for(DEFAULT, cache_dir=not_a_dir) == S.compile_filter(DEFAULT)


# ---- really loading it ----
def _raw_clone(flags: int) -> int:
    """clone(2) by number, fork-like (NULL stack); returns 0 or the errno."""
    try:
        pid = sc.syscall(sc.SYS_clone, flags, 0, 0, 0, 0)
    except OSError as e:
        return e.errno
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return 0


def _errno_of(call) -> int:
    try:
        call()
        return 0
    except OSError as e:
        return e.errno


@needs_root
def test_default_filter_in_child(in_child, tmp_path):
    prog = S.filter_for(DEFAULT)

    def child():
        # a private mount namespace first, so a filter that wrongly allowed mount cannot touch the host
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        sc.set_no_new_privs()
        S.load_filter(prog)
        with open("/proc/self/status") as f:
            seccomp_line = [x for x in f if x.startswith("Seccomp:")][0].split()[1]
        r = {"status": seccomp_line}
        # this child still has every capability: any EPERM below comes from the filter
        r["mount"] = _errno_of(lambda: sc.mount("jbx", str(tmp_path), "tmpfs"))
        r["unshare"] = _errno_of(lambda: sc.unshare(sc.CLONE_NEWNS))
        r["clone_newuser"] = _raw_clone(sc.CLONE_NEWUSER | SIGCHLD)
        r["clone_plain"] = _raw_clone(SIGCHLD)
        r["clone3"] = _errno_of(lambda: sc.syscall(sc.SYS_clone3, None, 0))
        r["vsock"] = _errno_of(lambda: socket.socket(AF_VSOCK, socket.SOCK_STREAM))
        r["inet"] = _errno_of(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
        r["personality_query"] = _errno_of(lambda: sc.syscall(sc.SYS_personality, 0xFFFFFFFF))
        r["personality_norandom"] = _errno_of(lambda: sc.syscall(sc.SYS_personality, 0x0040000))
        p = tmp_path / "data"
        p.write_bytes(b"hello")
        r["io"] = p.read_bytes()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        r["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        pid = os.fork()
        if pid == 0:
            try:
                os.execv("/bin/true", ["true"])
            finally:
                os._exit(99)
        r["exec"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        r["subprocess"] = subprocess.run(["/bin/sh", "-c", "echo ok; exit 3"], capture_output=True).returncode
        return r

    r = in_child(child)
    assert r["status"] == "2"
    assert r["mount"] == errno.EPERM
    assert r["unshare"] == errno.EPERM
    assert r["clone_newuser"] == errno.EPERM
    assert r["clone_plain"] == 0
    assert r["clone3"] == errno.ENOSYS
    assert r["vsock"] == errno.EPERM
    assert r["inet"] == 0
    assert r["personality_query"] == 0 and r["personality_norandom"] == errno.EPERM
    assert r["io"] == b"hello"
    assert r["fork"] == 7 and r["exec"] == 0 and r["subprocess"] == 3


@needs_root
def test_without_the_filter_the_same_calls_succeed(in_child, tmp_path):
    """Control for the test above: the child (root, all caps) can do them when unfiltered."""

    def child():
        sc.unshare(sc.CLONE_NEWNS)  # raises rather than go on in the host's namespace
        r = {"unshare": _errno_of(lambda: sc.unshare(sc.CLONE_NEWNS))}
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        r["mount"] = _errno_of(lambda: sc.mount("jbx", str(tmp_path), "tmpfs"))
        r["clone_newuser"] = _raw_clone(sc.CLONE_NEWUSER | SIGCHLD)
        r["clone3"] = _errno_of(lambda: sc.syscall(sc.SYS_clone3, None, 0))
        return r

    assert in_child(child) == {"unshare": 0, "mount": 0, "clone_newuser": 0, "clone3": errno.EINVAL}


@needs_root
def test_filter_with_sys_admin_allows_mount(in_child, tmp_path):
    prog = S.filter_for(DEFAULT | {SYS_ADMIN})

    def child():
        sc.set_no_new_privs()
        S.load_filter(prog)
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        sc.mount("jbx", str(tmp_path), "tmpfs", 0, "size=1m")
        (tmp_path / "in-tmpfs").write_text("x")
        with open("/proc/self/mountinfo") as f:
            mounted = any(line.split()[4] == str(tmp_path) for line in f)
        return mounted, _errno_of(lambda: sc.syscall(sc.SYS_clone3, None, 0)), \
            _errno_of(lambda: sc.syscall(sc.SYS_personality, 0x0040000))

    mounted, clone3, personality = in_child(child)
    assert mounted is True
    assert clone3 == errno.EINVAL  # reaches the kernel (no ENOSYS from the filter)
    assert personality == errno.EPERM  # the rest of the profile still applies
    assert not (tmp_path / "in-tmpfs").exists()


@needs_root
def test_load_needs_no_new_privs_or_sys_admin(in_child):
    prog = S.filter_for(DEFAULT)

    def child():
        os.setuid(65534)  # no CAP_SYS_ADMIN any more, and no_new_privs not set
        try:
            S.load_filter(prog)
        except OSError as e:
            return e.errno, str(e)
        return None

    err, msg = in_child(child)
    assert err == errno.EACCES
    assert "no_new_privs" in msg


def test_load_rejects_garbage(in_child):
    def child():
        sc.set_no_new_privs()
        out = []
        for junk in (b"", b"1234567", b"\x06\x00\x00\x00\x00\x00\xff\x7f" * (S.BPF_MAXINSNS + 1)):
            try:
                S.load_filter(junk)
                out.append("loaded")
            except ValueError:
                out.append("ValueError")
        with open("/proc/self/status") as f:
            out.append([x for x in f if x.startswith("Seccomp:")][0].split()[1])
        return out

    assert in_child(child) == ["ValueError", "ValueError", "ValueError", "0"]


def test_loading_does_not_touch_libseccomp(tmp_path, py):
    S.clear_memory_cache()
    S.filter_for(DEFAULT, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    script = f"""
from jupybox.linux import seccomp as S, syscalls as sc
prog = open({str(path)!r}, "rb").read()[40:]
sc.set_no_new_privs()
S.load_filter(prog)
maps = open("/proc/self/maps").read()
status = open("/proc/self/status").read()
print("libseccomp loaded:", "libseccomp" in maps)
print("seccomp mode:", [l for l in status.splitlines() if l.startswith("Seccomp:")][0].split()[1])
"""
    out = py(script)
    assert out.returncode == 0, out.stderr
    assert "libseccomp loaded: False" in out.stdout
    assert "seccomp mode: 2" in out.stdout
