"""Docker's default seccomp profile as Python data.

Transcribed from moby's default profile as moby/moby vendors it at commit
35797366d7cdae8d1d84eac06fbb314ccaf3ccaf (``vendor/github.com/moby/profiles/seccomp/default.json``, module
github.com/moby/profiles/seccomp v0.2.3; io_uring refused since moby#46762, docker v25; AF_ALG and AF_VSOCK
sockets refused; the lsm_* calls only with CAP_SYS_ADMIN),
keeping its structure so a future update is a mechanical diff: ``SYSCALLS`` is the JSON ``syscalls`` list,
each entry a dict with ``names``, ``action``, and optionally ``args``, ``errnoRet``, ``includes``,
``excludes`` (``caps``, ``arches`` as Go architecture names, ``minKernel``), ``comment``.

Semantics (moby ``profiles/seccomp/seccomp_linux.go``): an entry applies when every ``includes``
condition holds (all its caps are granted, the native Go arch is listed, the kernel is at least
``minKernel``) and no ``excludes`` condition holds (none of its caps granted, arch not listed).
Everything not allowed fails with EPERM (``defaultErrnoRet`` 1).
"""

from __future__ import annotations

#: bump when this file changes in a way the content digest would not show (it is part of the cache key)
PROFILE_VERSION = "moby-default-35797366"

DEFAULT_ACTION = "SCMP_ACT_ERRNO"
DEFAULT_ERRNO_RET = 1  # EPERM

#: libseccomp architecture names per native architecture (moby archMap, libseccomp spelling)
ARCH_MAP: dict[str, tuple[str, ...]] = {
    "x86_64": ("x86_64", "x86", "x32"),
    "aarch64": ("aarch64", "arm"),
}
#: Go's GOARCH for a kernel machine name (the ``arches`` in includes/excludes use Go's names)
GOARCH: dict[str, str] = {"x86_64": "amd64", "aarch64": "arm64"}

# The big allowlist, in the JSON's order.
_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount
listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64
preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
waitpid write writev
""".split()

_ALLOW = "SCMP_ACT_ALLOW"
_NS_FLAGS = 2114060288  # CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP = 0x7E020000


def _allow_if_cap(cap: str, *names: str) -> dict:
    return {"names": list(names), "action": _ALLOW, "includes": {"caps": [cap]}}


def _personality(value: int) -> dict:
    return {"names": ["personality"], "action": _ALLOW,
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]}


SYSCALLS: list[dict] = [
    {"names": _ALLOWED, "action": _ALLOW},
    {"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": _ALLOW,
     "includes": {"minKernel": "4.8"}},
    # every socket family but AF_ALG (38) and AF_VSOCK (40)
    {"names": ["socket"], "action": _ALLOW, "args": [{"index": 0, "value": 38, "op": "SCMP_CMP_LT"}]},
    {"names": ["socket"], "action": _ALLOW, "args": [{"index": 0, "value": 39, "op": "SCMP_CMP_EQ"}]},
    {"names": ["socket"], "action": _ALLOW, "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_GT"}]},
    _personality(0),           # PER_LINUX
    _personality(8),           # UNAME26
    _personality(131072),      # PER_LINUX32
    _personality(131080),      # PER_LINUX32 | UNAME26
    _personality(4294967295),  # query the current persona
    {"names": ["sync_file_range2", "swapcontext"], "action": _ALLOW, "includes": {"arches": ["ppc64le"]}},
    {"names": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
               "set_tls"], "action": _ALLOW, "includes": {"arches": ["arm", "arm64"]}},
    {"names": ["arch_prctl"], "action": _ALLOW, "includes": {"arches": ["amd64", "x32"]}},
    {"names": ["modify_ldt"], "action": _ALLOW, "includes": {"arches": ["amd64", "x32", "x86"]}},
    {"names": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], "action": _ALLOW,
     "includes": {"arches": ["s390", "s390x"]}},
    {"names": ["riscv_flush_icache"], "action": _ALLOW, "includes": {"arches": ["riscv64"]}},
    _allow_if_cap("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    _allow_if_cap("CAP_SYS_ADMIN", "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen",
                  "fspick", "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr",
                  "mount", "mount_setattr", "move_mount", "open_tree",
                  "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
                  "syslog", "umount", "umount2", "unshare"),
    {"names": ["clone"], "action": _ALLOW,
     "args": [{"index": 0, "value": _NS_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}],
     "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
    {"names": ["clone"], "action": _ALLOW,
     "args": [{"index": 1, "value": _NS_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}],
     "comment": "s390 parameter ordering for clone is different",
     "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,  # ENOSYS: glibc falls back to clone
     "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    _allow_if_cap("CAP_SYS_BOOT", "reboot"),
    _allow_if_cap("CAP_SYS_CHROOT", "chroot"),
    _allow_if_cap("CAP_SYS_MODULE", "delete_module", "init_module", "finit_module"),
    _allow_if_cap("CAP_SYS_PACCT", "acct"),
    _allow_if_cap("CAP_SYS_PTRACE", "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                  "process_vm_writev", "ptrace"),
    _allow_if_cap("CAP_SYS_RAWIO", "iopl", "ioperm"),
    _allow_if_cap("CAP_SYS_TIME", "settimeofday", "stime", "clock_settime", "clock_settime64"),
    _allow_if_cap("CAP_SYS_TTY_CONFIG", "vhangup"),
    _allow_if_cap("CAP_SYS_NICE", "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    _allow_if_cap("CAP_SYSLOG", "syslog"),
    _allow_if_cap("CAP_BPF", "bpf"),
    _allow_if_cap("CAP_PERFMON", "perf_event_open"),
]

#: the capabilities whose presence changes the compiled filter (the rest do not affect it)
RELEVANT_CAPS: frozenset[str] = frozenset(
    cap for entry in SYSCALLS for cond in ("includes", "excludes")
    for cap in entry.get(cond, {}).get("caps", ()))
