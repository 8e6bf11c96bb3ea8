/* jupybox.linux._spawn: starting processes from Python without fork, in C.
 *
 * spawn_init() starts the container init (init.c, a small static program exec'ed from a sealed
 * memfd) with a fixed set of descriptors: it is how the store's service makes every container
 * and every `exec`. spawn() and exec_in_place() run a command with the security steps of job.h
 * (the no-isolation fallback's commands, and tests of those steps).
 *
 * Why a vfork-style child: a fork of the ~25 MB service would copy its page tables and, at the
 * exec, tear them down again (~1 ms each time). clone(CLONE_VM | CLONE_VFORK), as glibc's
 * posix_spawn makes it, borrows the parent's memory, runs only raw syscalls on a stack of its
 * own, and the parent resumes once the child has exec'ed or failed.
 *
 * A failure is reported as OSError(errno, strerror, step): the caller turns the step into
 * docker's exit code (125, 126, 127).
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

#include "job.h"

#define CHILD_STACK (256 * 1024)
#define INIT_MAX_FDS 16

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

/* ---- spawn_init: the container init (init.c), exec'ed from a sealed memfd ---- */

struct init_job {
    int exe;                    /* the init binary (a sealed memfd) */
    int devnull;
    int nfds;
    int fds[INIT_MAX_FDS];      /* become 3, 4, 5, ... */
    volatile int failed_errno;
};

static int init_child(void *arg)
{
    struct init_job *j = arg;
    static char *const argv[] = {"jupybox-init", NULL};
    static char *const envp[] = {NULL};
    job_default_signals();
    /* out of the way first (a source may be another one's target), then into place */
    int tmp[INIT_MAX_FDS];
    int exe = fcntl(j->exe, F_DUPFD_CLOEXEC, 3 + INIT_MAX_FDS);
    if (exe < 0)
        goto fail;
    for (int i = 0; i < j->nfds; i++) {
        if ((tmp[i] = fcntl(j->fds[i], F_DUPFD_CLOEXEC, 3 + INIT_MAX_FDS)) < 0)
            goto fail;
    }
    for (int i = 0; i < 3; i++) {
        if (dup2(j->devnull, i) < 0)
            goto fail;
    }
    for (int i = 0; i < j->nfds; i++) {
        if (dup3(tmp[i], 3 + i, 0) < 0)
            goto fail;
    }
    /* nothing else of the launcher's reaches the init */
    if (job_cloexec_from(3 + j->nfds) != 0)
        goto fail;
    if (job_unblock_signals() != 0)
        goto fail;
    syscall(SYS_execveat, exe, "", argv, envp, AT_EMPTY_PATH);
    if (errno == ENOENT || errno == ENOSYS) {
        /* Debian 11's 5.10 kernel answers ENOENT to an execveat of a descriptor with an empty path
         * (seen in the v2 guest's second boot); the descriptor's /proc entry is the same file */
        char path[32] = "/proc/self/fd/";
        char digits[12];
        int n = 0;
        for (unsigned v = (unsigned)exe; n == 0 || v; v /= 10)
            digits[n++] = (char)('0' + v % 10);
        size_t at = strlen(path);
        while (n)
            path[at++] = digits[--n];
        path[at] = '\0';
        execve(path, argv, envp);
    }
fail:
    j->failed_errno = errno;
    _exit(127);
}

PyDoc_STRVAR(spawn_init_doc,
"spawn_init(exe_fd, fds) -> pid\n\n"
"Start the container init (``exe_fd``: the binary, e.g. a sealed memfd) in a child made with\n"
"clone(CLONE_VM|CLONE_VFORK): /dev/null on 0, 1, 2, ``fds`` on 3, 4, 5, ... and nothing else,\n"
"signals at their defaults, an empty environment, argv ['jupybox-init']. Returns once it is\n"
"exec'ed; a failure raises OSError, the child already reaped.");

static PyObject *spawn_init(PyObject *self, PyObject *args)
{
    struct init_job j;
    PyObject *fds;
    memset(&j, 0, sizeof j);
    if (!PyArg_ParseTuple(args, "iO", &j.exe, &fds))
        return NULL;
    PyObject *fast = PySequence_Fast(fds, "fds must be a sequence of descriptors");
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > INIT_MAX_FDS) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "too many descriptors for the init");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        j.fds[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (j.fds[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    j.nfds = (int)n;
    j.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (j.devnull < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    void *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        close(j.devnull);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(init_child, (char *)stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &j);
    int clone_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    munmap(stack, CHILD_STACK);
    close(j.devnull);
    if (pid < 0) {
        errno = clone_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (j.failed_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        errno = j.failed_errno;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "jupybox-init");
    }
    return PyLong_FromLong(pid);
}

static PyMethodDef methods[] = {
    {"spawn_init", (PyCFunction)spawn_init, METH_VARARGS, spawn_init_doc},
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
