/* The last steps before a container's command runs, in C: security, then execve.
 *
 * Why C: these steps used to run in a Python process forked from the launcher (~25 MB). Each
 * cost more than the syscalls themselves: ctypes calls, copy-on-write faults, and above all the
 * execve, which has to tear down the forked interpreter's address space before the launcher can
 * see the exec happen (~1 ms of a ~6 ms container start). Here the child is made with
 * clone(CLONE_VM | CLONE_VFORK), as glibc's posix_spawn makes it: it borrows the parent's memory
 * (no page tables copied, nothing to tear down), runs only raw syscalls on a stack of its own,
 * and the parent resumes once the command is exec'ed or the child has failed.
 *
 * The order is runc's: signals to their defaults, stdio, supplementary groups and gid, rlimits,
 * the capability sets (the bounding set is dropped while CAP_SETPCAP is still held), uid (setuid
 * away from root clears the permitted and effective sets), no_new_privs, seccomp last (its filter
 * may refuse the calls before it), the working directory, execve. Every descriptor above 2 is
 * marked close-on-exec, so the launcher's error pipe reads EOF when the exec succeeds.
 *
 * A failure is reported as OSError(errno, strerror, step): the caller turns the step into
 * docker's exit code (125, 126, 127). The same steps run without the clone in exec_in_place()
 * (a container without an init: its PID 1 becomes the command).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_RLIMITS 16
#define CHILD_STACK (256 * 1024)

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
    /* written by the child, read by the parent after the vfork returns */
    volatile int failed_step;
    volatile int failed_errno;
};

static int fail(struct job *j, enum step s)
{
    j->failed_errno = errno;
    j->failed_step = s;
    return -1;
}

static int apply_caps(struct job *j)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0)
        return fail(j, STEP_CAPGET);
    /* a process never gains a capability by capset: clamp to what is permitted now */
    uint64_t permitted = (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
    uint64_t want = j->caps & permitted;
    for (int c = 0; c <= j->last_cap; c++) {
        if ((want >> c) & 1)
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 0)
            return fail(j, STEP_BOUNDING); /* not already out of the set: a real failure */
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return fail(j, STEP_AMBIENT); /* EINVAL: a kernel without ambient capabilities */
    memset(data, 0, sizeof data);
    data[0].effective = data[0].permitted = (uint32_t)want;
    data[1].effective = data[1].permitted = (uint32_t)(want >> 32);
    /* inheritable stays empty: docker since 20.10.14 (CVE-2022-24769) */
    hdr.version = _LINUX_CAPABILITY_VERSION_3;
    hdr.pid = 0;
    if (syscall(SYS_capset, &hdr, data) != 0)
        return fail(j, STEP_CAPSET);
    return 0;
}

static int mark_cloexec_above_stdio(void)
{
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
    /* kernels before 5.11 */
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < max; fd++) {
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC) && fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) != 0)
            return -1;
    }
    return 0;
}

/* The kernel's struct sigaction (glibc's wrapper refuses its own signals 32 and 33, which a
 * parent may still have left ignored: the command must get them at their default too). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

static void default_signals(void)
{
    struct kernel_sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.handler = SIG_DFL;
    for (int s = 1; s <= 64; s++) {
        if (s != SIGKILL && s != SIGSTOP)
            syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof(uint64_t));
    }
}

static int unblock_signals(void)
{
    uint64_t none = 0;
    return (int)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

/* Runs in the vfork child (or in place): only syscalls and the job's memory. Returns on failure. */
static int run_job(struct job *j)
{
    default_signals();
    int tmp[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++) {
        /* first out of the way: a source may be another one's target */
        if (j->fds[i] >= 0 && (tmp[i] = fcntl(j->fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
            return fail(j, STEP_STDIO);
    }
    for (int i = 0; i < 3; i++) {
        if (tmp[i] >= 0 && dup2(tmp[i], i) < 0)
            return fail(j, STEP_STDIO);
    }
    if (mark_cloexec_above_stdio() != 0)
        return fail(j, STEP_FDS);
    if (j->set_groups && syscall(SYS_setgroups, j->ngroups, j->groups) != 0)
        return fail(j, STEP_SETGROUPS);
    if (j->gid >= 0 && syscall(SYS_setresgid, (gid_t)j->gid, (gid_t)j->gid, (gid_t)j->gid) != 0)
        return fail(j, STEP_SETGID);
    for (int i = 0; i < j->nrlimits; i++) {
        if (setrlimit(j->rl_resource[i], &j->rl_value[i]) != 0)
            return fail(j, STEP_RLIMIT);
    }
    if (j->set_caps && apply_caps(j) != 0)
        return -1;
    if (j->uid >= 0 && syscall(SYS_setresuid, (uid_t)j->uid, (uid_t)j->uid, (uid_t)j->uid) != 0)
        return fail(j, STEP_SETUID);
    if (j->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail(j, STEP_NO_NEW_PRIVS);
    if (j->prog.len && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &j->prog, 0, 0) != 0)
        return fail(j, STEP_SECCOMP);
    if (j->cwd && chdir(j->cwd) != 0)
        return fail(j, STEP_CHDIR);
    if (unblock_signals() != 0)
        return fail(j, STEP_SIGNALS);
    execve(j->path, j->argv, j->envp);
    return fail(j, STEP_EXECVE);
}

static int child_main(void *arg)
{
    run_job((struct job *)arg);
    _exit(127);
}

/* ---- argument conversion: everything the child needs is made here, in the parent ---- */

struct holder {
    PyObject *keep;             /* a list of the bytes objects the job points into */
    char **argv;
    char **envp;
    gid_t *groups;
};

static void holder_free(struct holder *h)
{
    Py_XDECREF(h->keep);
    PyMem_Free(h->argv);
    PyMem_Free(h->envp);
    PyMem_Free(h->groups);
}

static const char *keep_bytes(struct holder *h, PyObject *obj)
{
    PyObject *b = NULL;
    if (!PyUnicode_FSConverter(obj, &b))
        return NULL;
    if (PyList_Append(h->keep, b) != 0) {
        Py_DECREF(b);
        return NULL;
    }
    Py_DECREF(b);
    return PyBytes_AS_STRING(b);
}

static char **string_array(struct holder *h, PyObject *seq, const char *what)
{
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    char **out = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (!out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *s = keep_bytes(h, PySequence_Fast_GET_ITEM(fast, i));
        if (!s) {
            PyMem_Free(out);
            Py_DECREF(fast);
            return NULL;
        }
        out[i] = (char *)s;
    }
    Py_DECREF(fast);
    return out;
}

static int make_job(struct job *j, struct holder *h, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"path", "argv", "env", "cwd", "fds", "groups", "gid", "uid", "rlimits",
                             "caps", "last_cap", "no_new_privs", "seccomp", NULL};
    PyObject *path, *argv, *env, *cwd = Py_None, *fds = Py_None, *groups = Py_None, *rlimits = Py_None;
    PyObject *caps = Py_None;
    long long gid = -1, uid = -1;
    int last_cap = 40, nnp = 0;
    Py_buffer prog = {0};
    memset(j, 0, sizeof *j);
    memset(h, 0, sizeof *h);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|$OOOLLOOipz*", kwlist, &path, &argv, &env, &cwd,
                                     &fds, &groups, &gid, &uid, &rlimits, &caps, &last_cap, &nnp, &prog))
        return -1;
    int ok = -1;
    h->keep = PyList_New(0);
    if (!h->keep)
        goto out;
    if (!(j->path = keep_bytes(h, path)))
        goto out;
    if (!(h->argv = j->argv = string_array(h, argv, "argv must be a sequence")))
        goto out;
    if (!j->argv[0]) {
        PyErr_SetString(PyExc_ValueError, "argv must not be empty");
        goto out;
    }
    if (!(h->envp = j->envp = string_array(h, env, "env must be a sequence")))
        goto out;
    if (cwd != Py_None && !(j->cwd = keep_bytes(h, cwd)))
        goto out;
    j->fds[0] = j->fds[1] = j->fds[2] = -1;
    if (fds != Py_None && !PyArg_ParseTuple(fds, "iii;fds must be three descriptors", &j->fds[0], &j->fds[1], &j->fds[2]))
        goto out;
    if (groups != Py_None) {
        PyObject *fast = PySequence_Fast(groups, "groups must be a sequence");
        if (!fast)
            goto out;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        h->groups = j->groups = PyMem_Calloc((size_t)n + 1, sizeof(gid_t));
        for (Py_ssize_t i = 0; j->groups && i < n; i++) {
            unsigned long g = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(fast, i));
            j->groups[i] = (gid_t)g;
        }
        Py_DECREF(fast);
        if (!j->groups) {
            PyErr_NoMemory();
            goto out;
        }
        if (PyErr_Occurred())
            goto out;
        j->set_groups = 1;
        j->ngroups = (size_t)n;
    }
    j->gid = gid;
    j->uid = uid;
    if (rlimits != Py_None) {
        PyObject *fast = PySequence_Fast(rlimits, "rlimits must be a sequence of (resource, value)");
        if (!fast)
            goto out;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        if (n > MAX_RLIMITS) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "too many rlimits");
            goto out;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            int res;
            unsigned long long value;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "iK;rlimits: (resource, value)", &res, &value)) {
                Py_DECREF(fast);
                goto out;
            }
            j->rl_resource[i] = res;
            j->rl_value[i].rlim_cur = j->rl_value[i].rlim_max = (rlim_t)value;
        }
        j->nrlimits = (int)n;
        Py_DECREF(fast);
    }
    if (caps != Py_None) {
        j->caps = PyLong_AsUnsignedLongLong(caps);
        if (PyErr_Occurred())
            goto out;
        j->set_caps = 1;
    }
    j->last_cap = last_cap;
    j->no_new_privs = nnp;
    if (prog.buf && prog.len) {
        if (prog.len % sizeof(struct sock_filter) || prog.len / sizeof(struct sock_filter) > 0xffff) {
            PyErr_SetString(PyExc_ValueError, "seccomp: not a BPF program");
            goto out;
        }
        /* the bytes stay alive with the holder; the child reads them in place */
        PyObject *copy = PyBytes_FromStringAndSize(prog.buf, prog.len);
        if (!copy || PyList_Append(h->keep, copy) != 0) {
            Py_XDECREF(copy);
            goto out;
        }
        Py_DECREF(copy);
        j->prog.len = (unsigned short)(prog.len / sizeof(struct sock_filter));
        j->prog.filter = (struct sock_filter *)PyBytes_AS_STRING(copy);
    }
    ok = 0;
out:
    if (prog.obj)
        PyBuffer_Release(&prog);
    return ok;
}

static PyObject *raise_failed(struct job *j)
{
    int e = j->failed_errno;
    PyObject *step = PyUnicode_FromString(step_names[j->failed_step]);
    if (!step)
        return NULL;
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "isO", e, strerror(e), step);
    Py_DECREF(step);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyDoc_STRVAR(spawn_doc,
"spawn(path, argv, env, *, cwd=None, fds=None, groups=None, gid=-1, uid=-1, rlimits=None,\n"
"      caps=None, last_cap=40, no_new_privs=False, seccomp=None) -> pid\n\n"
"Start ``path`` in a child made with clone(CLONE_VM|CLONE_VFORK) after the security steps\n"
"(see the module's comment). Returns once the command is exec'ed. A failed step raises\n"
"OSError(errno, strerror, step), the child already reaped. ``fds`` become 0, 1, 2; every other\n"
"descriptor is closed at the exec. ``caps`` is a bit mask (None: leave the sets alone).");

static PyObject *spawn(PyObject *self, PyObject *args, PyObject *kwargs)
{
    struct job j;
    struct holder h;
    if (make_job(&j, &h, args, kwargs) != 0) {
        holder_free(&h);
        return NULL;
    }
    void *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        holder_free(&h);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    /* no handler of ours may run in the child: signals wait until it has reset them */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(child_main, (char *)stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &j);
    int clone_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    munmap(stack, CHILD_STACK);
    PyObject *result = NULL;
    if (pid < 0) {
        errno = clone_errno;
        PyErr_SetFromErrno(PyExc_OSError);
    } else if (j.failed_step) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        raise_failed(&j);
    } else {
        result = PyLong_FromLong(pid);
    }
    holder_free(&h);
    return result;
}

PyDoc_STRVAR(exec_in_place_doc,
"exec_in_place(path, argv, env, **same as spawn) -> never returns\n\n"
"The same steps in this process, then execve. On failure raises OSError(errno, strerror, step)\n"
"with this process partly changed: the caller should only report and exit.");

static PyObject *exec_in_place(PyObject *self, PyObject *args, PyObject *kwargs)
{
    struct job j;
    struct holder h;
    if (make_job(&j, &h, args, kwargs) != 0) {
        holder_free(&h);
        return NULL;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    run_job(&j);
    sigprocmask(SIG_SETMASK, &old, NULL);
    raise_failed(&j);
    holder_free(&h);
    return NULL;
}

static PyMethodDef methods[] = {
    {"spawn", (PyCFunction)(void (*)(void))spawn, METH_VARARGS | METH_KEYWORDS, spawn_doc},
    {"exec_in_place", (PyCFunction)(void (*)(void))exec_in_place, METH_VARARGS | METH_KEYWORDS, exec_in_place_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "jupybox.linux._spawn",
    "A container's last steps (security, execve) in C; see _spawn.c.", -1, methods,
};

PyMODINIT_FUNC PyInit__spawn(void)
{
    return PyModule_Create(&module);
}
