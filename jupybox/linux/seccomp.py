"""Docker's default seccomp filter: compiled once with libseccomp, loaded with one prctl.

Two halves, on purpose:

* ``filter_for(caps)`` (in the launcher, before fork) turns ``seccomp_profile`` into a BPF program with
  libseccomp through ctypes. Programs are cached in memory per capability set and on disk under a cache
  directory (``cache_dir=`` or ``set_cache_dir``), so libseccomp runs once per (profile, libseccomp
  version, arch, relevant caps, kernel) on a host, not once per container start.
* ``load_filter(bpf)`` (in the child, right before exec) installs those bytes with
  ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sock_fprog)``. It never touches libseccomp.
  It needs no_new_privs (``syscalls.set_no_new_privs()``) or CAP_SYS_ADMIN.

On-disk format: ``b"JBXSECC1"`` + sha256(program) + program (struct sock_filter[], 8 bytes each);
a file that does not verify is ignored and rewritten.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct

from jupybox.linux import seccomp_profile as profile
from jupybox.linux.caps import CAP_NAMES, cap_number
from jupybox.linux.syscalls import MACHINE, PR_SET_SECCOMP, _get_errno, _prctl, _strerror

__all__ = [
    "SECCOMP_MODE_FILTER", "BPF_MAXINSNS", "set_cache_dir", "get_cache_dir", "filter_for", "compile_filter",
    "load_filter", "cache_key", "libseccomp_version", "unknown_syscalls", "clear_memory_cache",
    "resolve_syscall", "arch_token", "OPTIMIZE", "compile_rules", "applicable",
]

SECCOMP_MODE_FILTER = 2
BPF_MAXINSNS = 4096
_MAGIC = b"JBXSECC1"
_HEADER = len(_MAGIC) + 32

# ---- libseccomp (loaded lazily: only compiling needs it) ----
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_ACT_TRACE = 0x7FF00000
_NR_SCMP_ERROR = -1
_SCMP_FLTATR_CTL_OPTIMIZE = 8
#: libseccomp filter layout: 1 = its default (a syscall list, what runc/docker produce), 2 = binary tree.
#: The tree halves the kernel's work when the filter is attached (its per-syscall cache is computed by
#: running the filter for every syscall number) and shortens the path for conditional syscalls.
OPTIMIZE = 2
_ARCH_NATIVE_ERROR = 0
_CMP_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
            "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


class _ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):  # struct scmp_version
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_lib = None
_unknown: set[str] = set()


def _libseccomp():
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise OSError(2, f"seccomp: cannot load libseccomp.so.2 (install libseccomp2): {e}") from None
    vp, u32, i = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
    for name, res, args in (
        ("seccomp_init", vp, [u32]),
        ("seccomp_release", None, [vp]),
        ("seccomp_arch_add", i, [vp, u32]),
        ("seccomp_attr_set", i, [vp, i, u32]),
        ("seccomp_arch_exist", i, [vp, u32]),
        ("seccomp_arch_resolve_name", u32, [ctypes.c_char_p]),
        ("seccomp_syscall_resolve_name", i, [ctypes.c_char_p]),
        ("seccomp_syscall_resolve_name_arch", i, [u32, ctypes.c_char_p]),
        ("seccomp_rule_add_array", i, [vp, u32, i, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]),
        ("seccomp_export_bpf", i, [vp, i]),
        ("seccomp_version", ctypes.POINTER(_Version), []),
    ):
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    _lib = lib
    return lib


def libseccomp_version() -> str:
    v = _libseccomp().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def resolve_syscall(name: str, arch: str | None = None) -> int | None:
    """The syscall number of ``name`` on ``arch`` (libseccomp's names: x86_64, x86, x32, aarch64, arm;
    None = native), or None when that arch has no such syscall or libseccomp does not know it."""
    lib = _libseccomp()
    if arch is None:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
    else:
        token = lib.seccomp_arch_resolve_name(arch.encode())
        if token == _ARCH_NATIVE_ERROR:
            raise ValueError(f"seccomp: unknown architecture {arch!r}")
        nr = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
    return nr if nr >= 0 else None


def arch_token(arch: str) -> int:
    """The AUDIT_ARCH_* value a filter sees in seccomp_data.arch for a libseccomp arch name."""
    token = _libseccomp().seccomp_arch_resolve_name(arch.encode())
    if token == _ARCH_NATIVE_ERROR:
        raise ValueError(f"seccomp: unknown architecture {arch!r}")
    return token


def unknown_syscalls() -> set[str]:
    """Names from the profile that this libseccomp could not resolve (skipped, as runc does)."""
    return set(_unknown)


# ---- which profile entries apply ----
def _kernel_version() -> tuple[int, ...]:
    nums = []
    for part in os.uname().release.split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits or 0))
    return tuple(nums)


def _cap_names(caps) -> frozenset[str]:
    return frozenset(CAP_NAMES[c] if isinstance(c, int) else CAP_NAMES[cap_number(c)] for c in caps)


def _applies(entry: dict, capnames: frozenset[str], goarch: str, kver: tuple) -> bool:
    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    if inc.get("caps") and not all(c in capnames for c in inc["caps"]):
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if inc.get("minKernel"):
        want = tuple(int(x) for x in inc["minKernel"].split("."))
        if kver < want:
            return False
    if exc.get("caps") and any(c in capnames for c in exc["caps"]):
        return False
    if exc.get("arches") and goarch in exc["arches"]:
        return False
    return True


def _action(name: str, errno_ret) -> int:
    if name == "SCMP_ACT_ALLOW":
        return SCMP_ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return _SCMP_ACT_ERRNO | ((1 if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _SCMP_ACT_TRACE | ((1 if errno_ret is None else errno_ret) & 0xFFFF)
    fixed = {"SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
             "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS, "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
             "SCMP_ACT_LOG": SCMP_ACT_LOG}
    if name not in fixed:
        raise ValueError(f"seccomp profile: unsupported action {name!r}")
    return fixed[name]


def _selected(caps) -> tuple[frozenset[str], tuple[bool, ...]]:
    """(relevant cap names, which profile entries apply) — everything the compiled program depends on."""
    capnames = _cap_names(caps) & profile.RELEVANT_CAPS
    goarch, kver = profile.GOARCH.get(MACHINE, MACHINE), _kernel_version()
    return capnames, tuple(_applies(e, capnames, goarch, kver) for e in profile.SYSCALLS)


# ---- compiling (libseccomp) ----
def compile_filter(caps, *, optimize: int | None = None) -> bytes:
    """Compile the default profile for a capability set (numbers or CAP_ names) into BPF bytes.

    Slow (milliseconds): use ``filter_for``, which caches. Syscall names this libseccomp does not know
    are skipped and remembered (``unknown_syscalls()``). ``optimize`` defaults to ``OPTIMIZE``; a
    libseccomp older than 2.5 ignores it.
    """
    _, applies = _selected(caps)
    entries = [e for e, ok in zip(profile.SYSCALLS, applies) if ok]
    return compile_rules(profile.DEFAULT_ACTION, profile.DEFAULT_ERRNO_RET,
                         profile.ARCH_MAP.get(MACHINE, (MACHINE,)), entries, optimize=optimize)


def applicable(entries, caps) -> list[dict]:
    """The entries of a profile (docker's ``syscalls`` list) that apply with ``caps`` here."""
    capnames = _cap_names(caps)
    goarch, kver = profile.GOARCH.get(MACHINE, MACHINE), _kernel_version()
    return [e for e in entries if _applies(e, capnames, goarch, kver)]


def compile_rules(default_action: str, default_errno, arches, entries, *, optimize: int | None = None) -> bytes:
    """BPF bytes for a profile's parts: its default action, the libseccomp names of the
    architectures it covers and the entries that apply (docker's JSON form of each)."""
    lib = _libseccomp()
    default = _action(default_action, default_errno)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(12, "seccomp_init failed")
    try:
        level = OPTIMIZE if optimize is None else optimize
        if level != 1:
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, level)  # < 2.5: unsupported, keep default
        for arch in arches:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if token == _ARCH_NATIVE_ERROR:
                continue  # this libseccomp does not know the arch
            if lib.seccomp_arch_exist(ctx, token) == 0:
                continue  # native arch is already in the context
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -17:  # EEXIST
                raise OSError(-rc, f"seccomp_arch_add {arch}: {_strerror(-rc)}")
        for entry in entries:
            action = _action(entry["action"], entry.get("errnoRet"))
            if action == default:
                continue  # libseccomp refuses rules equal to the default action; they change nothing
            args = entry.get("args") or ()
            cmps = (_ArgCmp * max(1, len(args)))()
            for k, a in enumerate(args):
                cmps[k].arg = a["index"]
                cmps[k].op = _CMP_OPS[a["op"]]
                cmps[k].datum_a = a["value"]
                cmps[k].datum_b = a.get("valueTwo", 0)
            for name in entry["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    _unknown.add(name)
                    continue
                rc = lib.seccomp_rule_add_array(ctx, action, nr, len(args), cmps)
                if rc < 0:
                    raise OSError(-rc, f"seccomp rule for {name}: {_strerror(-rc)}")
        fd = os.memfd_create("jupybox-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise OSError(-rc, f"seccomp_export_bpf: {_strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, 0, os.SEEK_SET)
            chunks, got = [], 0
            while got < size:
                b = os.read(fd, size - got)
                if not b:
                    break
                chunks.append(b)
                got += len(b)
            bpf = b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    _check_program(bpf)
    return bpf


# ---- caching ----
_cache_dir: str | None = None
_by_caps: dict[frozenset, bytes] = {}
_by_key: dict[str, bytes] = {}
_profile_digest: str | None = None
_on_disk: set[tuple[str, frozenset]] = set()


def set_cache_dir(path) -> None:
    """Where compiled programs are kept (e.g. ``Layout().cache``); None keeps them in memory only."""
    global _cache_dir
    _cache_dir = None if path is None else os.fspath(path)


def get_cache_dir() -> str | None:
    return _cache_dir


def clear_memory_cache() -> None:
    _by_caps.clear()
    _by_key.clear()
    _on_disk.clear()
    _prepared.clear()


def cache_key(caps) -> str:
    """sha256 of (profile version and content, libseccomp version, arch, relevant caps, kernel gates)."""
    global _profile_digest
    if _profile_digest is None:
        _profile_digest = hashlib.sha256(repr((profile.DEFAULT_ACTION, profile.DEFAULT_ERRNO_RET,
                                               profile.ARCH_MAP, profile.SYSCALLS)).encode()).hexdigest()
    capnames, applies = _selected(caps)
    material = "\n".join([
        "jupybox-seccomp-1", f"optimize={OPTIMIZE}", profile.PROFILE_VERSION, _profile_digest,
        libseccomp_version(), MACHINE, ",".join(sorted(capnames)), "".join("1" if a else "0" for a in applies),
    ])
    return hashlib.sha256(material.encode()).hexdigest()


def _check_program(bpf: bytes) -> None:
    if not bpf or len(bpf) % 8 or len(bpf) // 8 > BPF_MAXINSNS:
        raise ValueError(f"seccomp: not a BPF program ({len(bpf)} bytes; want a non-empty multiple of 8, "
                         f"at most {BPF_MAXINSNS} instructions)")


def _read_cached(path: str) -> bytes | None:
    """The program stored at ``path``, or None if missing, damaged, or not safely ours.

    A seccomp program is security policy: a file another user could have written is not trusted.
    """
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
            blob = f.read()
    except OSError:
        return None
    if len(blob) <= _HEADER or blob[:len(_MAGIC)] != _MAGIC:
        return None
    bpf = blob[_HEADER:]
    if hashlib.sha256(bpf).digest() != blob[len(_MAGIC):_HEADER]:
        return None
    try:
        _check_program(bpf)
    except ValueError:
        return None
    return bpf


def _write_cached(path: str, bpf: bytes) -> None:
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            data = _MAGIC + hashlib.sha256(bpf).digest() + bpf
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def filter_for(caps, cache_dir=None) -> bytes:
    """The compiled default-profile program for a set of capabilities (numbers or CAP_ names).

    Memory cache first, then ``<cache_dir>/seccomp-<cache_key>.bpf`` (``cache_dir`` or the one from
    ``set_cache_dir``), then libseccomp (and the result is written atomically to the cache dir).
    A cache dir that cannot be written is not an error: the program is still returned.
    """
    fcaps = caps if isinstance(caps, frozenset) else frozenset(caps)
    cdir = os.fspath(cache_dir) if cache_dir is not None else _cache_dir
    hit = _by_caps.get(fcaps)
    if hit is not None and (cdir is None or (cdir, fcaps) in _on_disk):
        return hit
    key = _key_of(fcaps)
    bpf = hit if hit is not None else _by_key.get(key)
    if cdir is not None:
        path = _cache_path(cdir, key)
        if bpf is None:
            bpf = _read_cached(path)
            need_write = bpf is None  # missing or damaged
        else:
            need_write = not os.path.exists(path)
        if bpf is None:
            bpf = compile_filter(fcaps)
        if need_write:
            try:
                _write_cached(path, bpf)
            except OSError:
                pass  # a read-only or full cache dir only costs the next process a compile
        _on_disk.add((cdir, fcaps))
    elif bpf is None:
        bpf = compile_filter(fcaps)
    if id(bpf) not in _prepared:
        _prepare(bpf)
    _by_key[key] = bpf
    _by_caps[fcaps] = bpf
    return bpf


_keys: dict[frozenset, str] = {}


def _key_of(fcaps: frozenset) -> str:
    k = _keys.get(fcaps)
    if k is None:
        k = _keys[fcaps] = cache_key(fcaps)
    return k


def _cache_path(cdir: str, key: str) -> str:
    return os.path.join(cdir, f"seccomp-{key}.bpf")


# ---- loading (no libseccomp) ----
_FPROG = 16  # sizeof(struct sock_fprog) on 64-bit: unsigned short len, 6 bytes padding, pointer
_pack_fprog = struct.Struct("=H6xQ").pack_into
_prepared: dict[int, tuple] = {}


def _prepare(bpf: bytes, keep: bool = True) -> tuple:
    """(bpf, buffer, address): one ctypes buffer holding a struct sock_fprog followed by the program.

    Built in the parent when ``filter_for`` caches a program, so the child's ``load_filter`` is one
    dict lookup and one prctl (building ctypes objects in a freshly forked child costs ~50 us).
    """
    _check_program(bpf)
    n = len(bpf)
    buf = ctypes.create_string_buffer(_FPROG + n)
    addr = ctypes.addressof(buf)
    ctypes.memmove(addr + _FPROG, bpf, n)
    _pack_fprog(buf, 0, n // 8, addr + _FPROG)
    entry = (bpf, buf, addr)
    if keep:
        _prepared[id(bpf)] = entry
    return entry


def load_filter(bpf: bytes) -> None:
    """Install a compiled program in this process (and everything it forks/execs), irrevocably.

    Needs no_new_privs or CAP_SYS_ADMIN. Call it last before exec: afterwards mount/unshare/... fail.
    Fastest with the very bytes object ``filter_for`` returned (prepared in the parent).
    """
    entry = _prepared.get(id(bpf))
    if entry is None or entry[0] is not bpf:
        entry = _prepare(bytes(bpf), keep=False)
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, entry[2], 0, 0) != 0:
        e = _get_errno()
        hint = " (set no_new_privs first or keep CAP_SYS_ADMIN)" if e == 13 else ""
        raise OSError(e, f"load seccomp filter ({len(bpf) // 8} instructions): {_strerror(e)}{hint}")
