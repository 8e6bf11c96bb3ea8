"""Run a command where no namespace can be made, as on mybinder.org or a hardened host.

    python -m jupybox.testing.nonamespaces -- CMD [ARGS...]

Sets no_new_privs and loads a seccomp filter, then execs CMD. The filter (inherited by everything
CMD starts, irrevocably) makes

* ``unshare(2)`` with any ``CLONE_NEW*`` flag fail with EPERM,
* ``clone(2)`` with any ``CLONE_NEW*`` flag fail with EPERM (plain forks and threads still work),
* ``clone3(2)`` fail with ENOSYS, so that libc falls back to ``clone(2)`` (clone3 passes its flags
  in memory, which a seccomp filter cannot read),
* ``setns(2)`` fail with EPERM,

and allows everything else. Even root cannot make a namespace under it, so jupybox's detection
must say ``fallback``. The filter is a small hand-written BPF program (no libseccomp needed),
for the native architecture and its 32-bit compat one (x86_64 + i386 and x32; aarch64 + arm).
"""

from __future__ import annotations

import errno
import os
import struct
import sys

from ..linux import syscalls as sc
from ..linux.seccomp import load_filter

# linux/audit.h
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_ARM = 0x40000028
X32_SYSCALL_BIT = 0x40000000

#: (unshare, clone, clone3, setns) per AUDIT_ARCH
SYSCALLS = {
    AUDIT_ARCH_X86_64: (272, 56, 435, 308),
    AUDIT_ARCH_I386: (310, 120, 435, 346),
    AUDIT_ARCH_AARCH64: (97, 220, 435, 268),
    AUDIT_ARCH_ARM: (337, 120, 435, 375),
}
ARCHES = {"x86_64": (AUDIT_ARCH_X86_64, AUDIT_ARCH_I386), "aarch64": (AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM)}

#: every namespace flag unshare(2) knows; clone(2) cannot take CLONE_NEWTIME (0x80 is in the exit
#: signal's byte there), so it is left out of clone's mask
UNSHARE_MASK = sc.CLONE_NEW_ALL | sc.CLONE_NEWTIME
CLONE_MASK = sc.CLONE_NEW_ALL

# linux/filter.h, linux/seccomp.h
BPF_LD_W_ABS = 0x20
BPF_ALU_AND_K = 0x54
BPF_JEQ_K = 0x15
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16  # struct seccomp_data; arg0's low 32 bits (little-endian)

_insn = struct.Struct("=HBBI")


def program(machine: str = sc.MACHINE) -> bytes:
    """The BPF program (struct sock_filter[]) for ``machine``."""
    if sys.byteorder != "little":  # pragma: no cover - arg0's offset below assumes little-endian
        raise OSError(errno.ENOSYS, "nonamespaces: only little-endian machines")
    if machine not in ARCHES:
        raise OSError(errno.ENOSYS, f"nonamespaces: unsupported architecture {machine}")
    # instructions with symbolic jump targets, resolved below: (code, jt, jf, k)
    code: list[tuple] = []
    labels: dict[str, int] = {}

    def label(name):
        labels[name] = len(code)

    def ret(value):
        code.append((BPF_RET_K, None, None, value))

    arches = ARCHES[machine]
    code.append((BPF_LD_W_ABS, None, None, OFF_ARCH))
    for i, arch in enumerate(arches):
        code.append((BPF_JEQ_K, f"arch{i}", None, arch))
    ret(SECCOMP_RET_ALLOW)  # an architecture this process cannot use anyway
    for i, arch in enumerate(arches):
        unshare, clone, clone3, setns = SYSCALLS[arch]
        label(f"arch{i}")
        code.append((BPF_LD_W_ABS, None, None, OFF_NR))
        if arch == AUDIT_ARCH_X86_64:  # x32 calls are x86_64's numbers with a high bit set
            code.append((BPF_ALU_AND_K, None, None, ~X32_SYSCALL_BIT & 0xFFFFFFFF))
        code.append((BPF_JEQ_K, "unshare", None, unshare))
        code.append((BPF_JEQ_K, "clone", None, clone))
        code.append((BPF_JEQ_K, "enosys", None, clone3))
        code.append((BPF_JEQ_K, "eperm", None, setns))
        ret(SECCOMP_RET_ALLOW)
    label("unshare")
    code.append((BPF_LD_W_ABS, None, None, OFF_ARG0))
    code.append((BPF_JSET_K, "eperm", None, UNSHARE_MASK))
    ret(SECCOMP_RET_ALLOW)
    label("clone")
    code.append((BPF_LD_W_ABS, None, None, OFF_ARG0))
    code.append((BPF_JSET_K, "eperm", None, CLONE_MASK))
    ret(SECCOMP_RET_ALLOW)
    label("eperm")
    ret(SECCOMP_RET_ERRNO | errno.EPERM)
    label("enosys")
    ret(SECCOMP_RET_ERRNO | errno.ENOSYS)

    out = bytearray()
    for pc, (op, jt, jf, k) in enumerate(code):
        offs = []
        for target in (jt, jf):
            off = 0 if target is None else labels[target] - pc - 1
            if not 0 <= off <= 255:
                raise AssertionError(f"nonamespaces: jump out of range at {pc}")
            offs.append(off)
        out += _insn.pack(op, offs[0], offs[1], k)
    return bytes(out)


def forbid_namespaces() -> None:
    """From now on this process and everything it starts cannot make or join a namespace."""
    sc.set_no_new_privs()
    load_filter(program())


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m jupybox.testing.nonamespaces -- CMD [ARGS...]\n"
              "runs CMD where no namespace can be made (unshare, clone, setns refused; clone3 ENOSYS)",
              file=sys.stderr)
        sys.exit(0 if argv else 2)
    try:
        forbid_namespaces()
    except OSError as e:
        print(f"nonamespaces: {e}", file=sys.stderr)
        sys.exit(125)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"nonamespaces: {argv[0]}: {e.strerror}", file=sys.stderr)
        sys.exit(127 if e.errno == errno.ENOENT else 126)


if __name__ == "__main__":
    main()
