"""The thin layer that touches the kernel: namespaces, mounts, pivot_root, prctl, capabilities, seccomp.

Only this package calls ctypes, and its one C extension, ``_spawn``, runs a container's last steps
(security, then execve) in a vfork-style child (see _spawn.c for why that is C). Its functions are cheap enough to run in a container's child process
between fork and exec: libc is loaded once at import, argtypes are fixed once, nothing imports or spawns
at call time. Failures raise ``OSError`` with the errno and a message that names the object (path, cap,
syscall); callers wrap them into :class:`jupybox.errors.RuntimeFailure`.

Modules (import the one you need; this package re-exports nothing):

    syscalls          unshare, setns, mount, umount2, pivot_root, pivot_into, sethostname, prctl helpers
    caps              capability table, docker's default set, resolve_caps, current_caps
    seccomp_profile   docker's default seccomp profile as Python data
    seccomp           filter_for(caps) -> compiled BPF (libseccomp, cached), load_filter(bpf) (no libseccomp)
    netdev            set_up(ifname): bring an interface (lo) up with one ioctl
    _spawn            spawn(path, argv, env, **security) -> pid; exec_in_place(...) (C)
"""
