/* A process's last steps before it runs a container's code: shared by the Python extension
 * (_spawn.c: the no-isolation fallback's commands) and the container init (init.c).
 *
 * The order is runc's: signals to their defaults, stdio, supplementary groups and gid, rlimits,
 * the capability sets (the bounding set is dropped while CAP_SETPCAP is still held), uid (setuid
 * away from root clears the permitted and effective sets), no_new_privs, seccomp last (its filter
 * may refuse the calls before it; without no_new_privs first, while CAP_SYS_ADMIN is still held),
 * the working directory, execve. Every descriptor above 2 is
 * marked close-on-exec, so a launcher's error pipe reads EOF when the exec succeeds.
 *
 * Only raw system calls and the job's own memory are used from job_credentials() on: the code may
 * run in a clone(CLONE_VM | CLONE_VFORK) child that borrows its parent's memory.
 *
 * A failure returns -1 with the step and errno in the job; the caller reports them.
 */
#ifndef JUPYBOX_JOB_H
#define JUPYBOX_JOB_H

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_RLIMITS 16

enum step {
    STEP_NONE = 0, STEP_SIGNALS, STEP_STDIO, STEP_FDS, STEP_SETGROUPS, STEP_SETGID, STEP_RLIMIT,
    STEP_BOUNDING, STEP_AMBIENT, STEP_CAPGET, STEP_CAPSET, STEP_SETUID, STEP_NO_NEW_PRIVS,
    STEP_SECCOMP, STEP_CHDIR, STEP_EXECVE,
};

static const char *const step_names[] = {
    "", "signals", "stdio", "descriptors", "setgroups", "setgid", "setrlimit",
    "capabilities (bounding set)", "capabilities (ambient set)", "capget", "capset", "setuid",
    "no_new_privs", "seccomp", "chdir", "execve",
};

struct job {
    const char *path;
    char **argv;
    char **envp;
    const char *cwd;            /* NULL: stay */
    int fds[3];                 /* become 0, 1, 2; -1: leave that one */
    int set_groups;
    gid_t *groups;
    size_t ngroups;
    long long gid;              /* -1: leave */
    long long uid;              /* -1: leave */
    int nrlimits;
    int rl_resource[MAX_RLIMITS];
    struct rlimit rl_value[MAX_RLIMITS];
    int set_caps;
    uint64_t caps;              /* what stays in the bounding, permitted and effective sets */
    int last_cap;
    int no_new_privs;
    struct sock_fprog prog;     /* len 0: no filter */
    int seccomp_first;          /* the filter before the credentials (runc's order without no_new_privs) */
    /* written by the child, read by the parent after the vfork returns */
    volatile int failed_step;
    volatile int failed_errno;
};

static int job_fail(struct job *j, enum step s)
{
    j->failed_errno = errno;
    j->failed_step = s;
    return -1;
}

static int job_apply_caps(struct job *j)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0)
        return job_fail(j, STEP_CAPGET);
    /* a process never gains a capability by capset: clamp to what is permitted now */
    uint64_t permitted = (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
    uint64_t want = j->caps & permitted;
    for (int c = 0; c <= j->last_cap; c++) {
        if ((want >> c) & 1)
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 0)
            return job_fail(j, STEP_BOUNDING); /* not already out of the set: a real failure */
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return job_fail(j, STEP_AMBIENT); /* EINVAL: a kernel without ambient capabilities */
    memset(data, 0, sizeof data);
    data[0].effective = data[0].permitted = (uint32_t)want;
    data[1].effective = data[1].permitted = (uint32_t)(want >> 32);
    /* inheritable stays empty: docker since 20.10.14 (CVE-2022-24769) */
    hdr.version = _LINUX_CAPABILITY_VERSION_3;
    hdr.pid = 0;
    if (syscall(SYS_capset, &hdr, data) != 0)
        return job_fail(j, STEP_CAPSET);
    return 0;
}

/* Every descriptor from `first` up closes at the next exec. CLOSE_RANGE_CLOEXEC is Linux 5.11's
 * (EINVAL before it, ENOSYS before close_range itself, 5.9): older kernels (Debian 11's 5.10, tested
 * in the v2 guest's second boot) get one fcntl per possible descriptor. */
static int job_cloexec_from(int first)
{
    if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < max; fd++) {
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC) && fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) != 0)
            return -1;
    }
    return 0;
}

static int job_cloexec_above_stdio(void)
{
    return job_cloexec_from(3);
}

/* The kernel's struct sigaction (glibc's wrapper refuses its own signals 32 and 33, which a
 * parent may still have left ignored: the command must get them at their default too). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

static void job_default_signals(void)
{
    struct kernel_sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.handler = SIG_DFL;
    for (int s = 1; s <= 64; s++) {
        if (s != SIGKILL && s != SIGSTOP)
            syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof(uint64_t));
    }
}

static int job_unblock_signals(void)
{
    uint64_t none = 0;
    return (int)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

static int job_stdio(struct job *j)
{
    int tmp[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++) {
        /* first out of the way: a source may be another one's target */
        if (j->fds[i] >= 0 && (tmp[i] = fcntl(j->fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
            return job_fail(j, STEP_STDIO);
    }
    for (int i = 0; i < 3; i++) {
        if (tmp[i] >= 0 && dup2(tmp[i], i) < 0)
            return job_fail(j, STEP_STDIO);
    }
    if (job_cloexec_above_stdio() != 0)
        return job_fail(j, STEP_FDS);
    return 0;
}

static int job_rlimits(struct job *j)
{
    for (int i = 0; i < j->nrlimits; i++) {
        if (setrlimit(j->rl_resource[i], &j->rl_value[i]) != 0)
            return job_fail(j, STEP_RLIMIT);
    }
    return 0;
}

/* groups, gid, (rlimits), capabilities, uid, no_new_privs, seccomp: who the process is */
static int job_credentials(struct job *j, int with_rlimits)
{
    if (j->seccomp_first && j->prog.len && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &j->prog, 0, 0) != 0)
        return job_fail(j, STEP_SECCOMP);
    if (j->set_groups && syscall(SYS_setgroups, j->ngroups, j->groups) != 0)
        return job_fail(j, STEP_SETGROUPS);
    if (j->gid >= 0 && syscall(SYS_setresgid, (gid_t)j->gid, (gid_t)j->gid, (gid_t)j->gid) != 0)
        return job_fail(j, STEP_SETGID);
    if (with_rlimits && job_rlimits(j) != 0)
        return -1;
    if (j->set_caps && job_apply_caps(j) != 0)
        return -1;
    if (j->uid >= 0 && syscall(SYS_setresuid, (uid_t)j->uid, (uid_t)j->uid, (uid_t)j->uid) != 0)
        return job_fail(j, STEP_SETUID);
    if (j->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return job_fail(j, STEP_NO_NEW_PRIVS);
    if (!j->seccomp_first && j->prog.len && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &j->prog, 0, 0) != 0)
        return job_fail(j, STEP_SECCOMP);
    return 0;
}

/* Every step, in order, then execve. Returns only on failure. */
static inline int run_job(struct job *j)
{
    job_default_signals();
    if (job_stdio(j) != 0 || job_credentials(j, 1) != 0)
        return -1;
    if (j->cwd && chdir(j->cwd) != 0)
        return job_fail(j, STEP_CHDIR);
    if (job_unblock_signals() != 0)
        return job_fail(j, STEP_SIGNALS);
    execve(j->path, j->argv, j->envp);
    return job_fail(j, STEP_EXECVE);
}

#endif
