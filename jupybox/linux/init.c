/* jupybox-init: a container's first processes, and the joiner of `exec`, in C.
 *
 * The store's service starts this small static program (from a sealed memfd: the container can
 * neither read its host path in /proc/1/exe nor overwrite it, CVE-2019-5736) with an empty
 * environment, argv ["jupybox-init"], /dev/null on 0-2 and:
 *   3  the control socket (messages from the service, see below)
 *   4  the report pipe: "P<pid>\n" (PID 1 exists), "E<code> <message>\n" (a failure, with docker's
 *      exit code 125/126/127); EOF once the command is exec'ed
 *   5  the status pipe (write end): PID 1 writes "X<code>" when the command has exited
 *   6  the status pipe (read end), kept by PID 1: the exit code stays readable after a crash of
 *      the service, whose successor takes this descriptor with pidfd_getfd(2)
 *   7+ cgroup.procs files to join (one per hierarchy)
 *
 * As a sandbox (made ahead of time, before the container's spec is known):
 *   H   joins the cgroup, unshares the namespaces (a user namespace first when rootless, mapped
 *       by newuidmap/newgidmap run from a child left outside), forks PID 1, reports it, exits;
 *   1   PID 1 of the new PID namespace: waits for its plan; assembles the root filesystem (runc's
 *       order) and pivots into it, resolves the user in the container's own /etc/passwd, then
 *       takes the container's credentials itself (user, capabilities, no_new_privs, seccomp) and
 *       starts the command in a child; stays as a small init (reaps, forwards signals, exits like
 *       the command). With --no-init it execs the command itself.
 * For `exec`: joins the cgroup and the namespaces, forks into the PID namespace, chroots into
 * the container's root (so it lands in the container even where jupybox itself runs in a chroot),
 * takes the container's credentials and execs.
 *
 * Messages on the control socket: a u32 length (little endian), a type byte, then fields, each a
 * tag byte, a u32 length and the value (always NUL-terminated; binary values are len - 1 bytes).
 * Descriptors travel with the first bytes of a message (SCM_RIGHTS). The Python side is
 * jupybox/runtime/initproto.py: the tags are defined there and here.
 *
 * PID 1 forgets the host: nothing of the plan is kept after its use (its memory is cleared), it is
 * not dumpable when the service is root (no one in the container may ptrace it or read its fds),
 * and after pivot_root no host path is reachable from it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"

#define FD_CTL 3
#define FD_REPORT 4
#define FD_STATUS_W 5
#define FD_STATUS_R 6
#define FD_PROCS 7

#define MAX_MSG (16u << 20)
#define MAX_MSG_FDS 16
#define MAX_FILE (16 << 20)       /* /etc/passwd, /etc/group: larger is refused */
#define MAX_LINKS 255
#define MAX_ID 2147483647LL       /* docker: uids and gids must be in range 0-2147483647 */

#define NOSUID_NODEV_NOEXEC (MS_NOSUID | MS_NODEV | MS_NOEXEC)

static const char SINGLE_ID[] =
    "rootless mode without /etc/subuid and /etc/subgid ranges for this user maps only root into the "
    "container (see `jupybox info`)";

/* ---------------------------------------------------------------------------------------------
 * reporting */

static int err_code;
static struct msg *plan_msgs[2]; /* the messages the plan lives in: cleared by PID 1 once used */
static char err_msg[4096];

/* Remember a failure (code, one line); returns -1 for the caller to pass up. */
static int failf(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    for (char *p = err_msg; *p; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    err_code = code;
    return -1;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* The remembered failure to the service; then the exit with its code. */
static void __attribute__((noreturn)) report_and_exit(void)
{
    char line[sizeof err_msg + 32];
    int n = snprintf(line, sizeof line, "E%d %s\n", err_code ? err_code : 125, err_msg);
    write_all(FD_REPORT, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    _exit(err_code ? err_code : 125);
}

static void __attribute__((noreturn)) die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    err_code = code;
    for (char *p = err_msg; *p; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    report_and_exit();
}

/* ---------------------------------------------------------------------------------------------
 * messages */

struct msg {
    char type;
    char *data;                 /* type byte, then fields */
    uint32_t len;
    int fds[MAX_MSG_FDS];
    int nfds;
};

struct field {
    unsigned char tag;
    uint32_t len;               /* with the terminating NUL */
    char *val;
};

static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* What a child writes to a pipe until it closes it, truncated to size - 1, NUL-terminated; its length. */
static size_t read_text(int fd, char *buf, size_t size)
{
    size_t got = 0;
    ssize_t n;
    while (got < size - 1 && (n = read(fd, buf + got, size - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    return got;
}

/* 0: a message; 1: EOF before one; -1: a broken or oversized one. */
static int recv_msg(int fd, struct msg *m)
{
    unsigned char head[4];
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_MSG_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {head, sizeof head};
    struct msghdr mh = {0};
    memset(m, 0, sizeof *m);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    ssize_t got;
    do {
        got = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got == 0)
        return 1;
    if (got < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < n && m->nfds < MAX_MSG_FDS; i++)
                memcpy(&m->fds[m->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
    }
    if (got < 4 && read_full(fd, head + got, 4 - (size_t)got) != 0)
        return -1;
    uint32_t len = (uint32_t)head[0] | ((uint32_t)head[1] << 8) | ((uint32_t)head[2] << 16) | ((uint32_t)head[3] << 24);
    if (len == 0 || len > MAX_MSG)
        return -1;
    m->data = malloc(len);
    if (!m->data || read_full(fd, m->data, len) != 0)
        return -1;
    m->len = len;
    m->type = m->data[0];
    return 0;
}

/* The next field at *pos, checked: its value ends with a NUL inside the message. */
static int next_field(const struct msg *m, uint32_t *pos, struct field *f)
{
    if (*pos + 5 > m->len)
        return 0;
    const unsigned char *p = (const unsigned char *)m->data + *pos;
    f->tag = p[0];
    f->len = (uint32_t)p[1] | ((uint32_t)p[2] << 8) | ((uint32_t)p[3] << 16) | ((uint32_t)p[4] << 24);
    if (f->len == 0 || f->len > m->len - *pos - 5)
        return -1;
    f->val = m->data + *pos + 5;
    if (f->val[f->len - 1] != '\0')
        return -1;
    *pos += 5 + f->len;
    return 1;
}

static void free_msg(struct msg *m)
{
    if (m->data) {
        explicit_bzero(m->data, m->len); /* host paths: not left in PID 1's memory */
        free(m->data);
    }
    m->data = NULL;
}

/* A growing array of strings (NULL-terminated for execve). */
struct strv {
    char **v;
    size_t n, cap;
};

static void strv_push(struct strv *s, char *item)
{
    if (s->n + 2 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            die(125, "starting the container: out of memory");
    }
    s->v[s->n++] = item;
    s->v[s->n] = NULL;
}

static long long num(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        die(125, "starting the container: a malformed number in its plan: %.40s", s);
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * the plan */

struct plan {
    /* root filesystem */
    char *rootfs, *workdir_for_mounts, *overlay, *fuse_overlayfs, *dev_userns;
    int new_netns, privileged, readonly_rootfs, rootfs_ready;
    struct strv cgroup_mounts;  /* pairs: host dir, name */
    struct strv mounts;         /* records: kind, source, destination, ro, is_dir, flags, options */
    struct strv devices;        /* records: path inside, type (c/b), major, minor, mode, uid, gid, host path */
    struct strv masked, readonly;
    long long shm_size;         /* bytes; 0: docker's 64m */
    /* the process */
    char *hostname, *user, *cwd, *userns;
    struct strv argv, env;
    int init, linger, no_new_privs, last_cap;
    uint64_t caps;
    char *seccomp;
    uint32_t seccomp_len;
    struct strv rlimits;
    struct strv namespaces;     /* exec: the names of the namespace descriptors, in order */
};

/* Split a value made of several NUL-terminated strings; push each. */
static void push_parts(struct strv *s, struct field *f, int parts)
{
    char *p = f->val, *end = f->val + f->len;
    for (int i = 0; i < parts; i++) {
        if (p >= end)
            die(125, "starting the container: a malformed record in its plan");
        strv_push(s, p);
        p += strlen(p) + 1;
    }
}

static void parse_plan(const struct msg *m, struct plan *pl)
{
    memset(pl, 0, sizeof *pl);
    pl->init = 1;
    pl->last_cap = 40;
    pl->no_new_privs = -1; /* the mode's default: set unless privileged */
    uint32_t pos = 1;
    struct field f;
    int r;
    while ((r = next_field(m, &pos, &f)) > 0) {
        switch (f.tag) {
        case 'r': pl->rootfs = f.val; break;
        case 'w': pl->workdir_for_mounts = f.val; break;
        case 'o': pl->overlay = f.val; break;
        case 'O': pl->fuse_overlayfs = f.val; break;
        case 'd': pl->dev_userns = f.val; break;
        case 'n': pl->new_netns = (int)num(f.val); break;
        case 'g': push_parts(&pl->cgroup_mounts, &f, 2); break;
        case 'M': push_parts(&pl->mounts, &f, 7); break;
        case 'v': push_parts(&pl->devices, &f, 8); break;
        case 'z': pl->shm_size = num(f.val); break;
        case 'k': strv_push(&pl->masked, f.val); break;
        case 'K': strv_push(&pl->readonly, f.val); break;
        case 'V': pl->privileged = (int)num(f.val); break;
        case 'Y': pl->readonly_rootfs = (int)num(f.val); break;
        case 'Q': pl->rootfs_ready = (int)num(f.val); break;
        case 'h': pl->hostname = f.val; break;
        case 'x': pl->user = f.val; break;
        case 'a': strv_push(&pl->argv, f.val); break;
        case 'e': strv_push(&pl->env, f.val); break;
        case 'W': pl->cwd = f.val; break;
        case 'i': pl->init = (int)num(f.val); break;
        case 'c': pl->caps = (uint64_t)num(f.val); break;
        case 'L': pl->last_cap = (int)num(f.val); break;
        case 'Z': pl->no_new_privs = (int)num(f.val); break;
        case 'S': pl->seccomp = f.val; pl->seccomp_len = f.len - 1; break;
        case 'l': strv_push(&pl->rlimits, f.val); break;
        case 'y': pl->linger = (int)num(f.val); break;
        case 't': pl->userns = f.val; break;
        case 'j': strv_push(&pl->namespaces, f.val); break;
        default: break; /* a newer service's field: not ours to know */
        }
    }
    if (r < 0)
        die(125, "starting the container: a malformed plan");
}

/* ---------------------------------------------------------------------------------------------
 * paths inside the root (runc's securejoin: every symlink is followed relative to the root, and
 * ".." never climbs above it; the container has not started, so nothing races us) */

static int secure_join(const char *root, const char *path, char *out, size_t outsz)
{
    char rest[PATH_MAX * 2];
    char resolved[PATH_MAX];
    size_t rlen = 0;
    int links = 0;
    if (snprintf(rest, sizeof rest, "%s", path) >= (int)sizeof rest)
        return failf(125, "path too long: %.200s", path);
    resolved[0] = '\0';
    char *p = rest;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *end = strchr(p, '/');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        char part[NAME_MAX + 1];
        if (plen > NAME_MAX)
            return failf(125, "path component too long in %.200s", path);
        memcpy(part, p, plen);
        part[plen] = '\0';
        p += plen;
        if (!strcmp(part, "."))
            continue;
        if (!strcmp(part, "..")) {
            char *slash = strrchr(resolved, '/');
            if (slash) {
                *slash = '\0';
                rlen = (size_t)(slash - resolved);
            }
            continue;
        }
        char candidate[PATH_MAX * 2];
        if (snprintf(candidate, sizeof candidate, "%s%s/%s", root, resolved, part) >= (int)sizeof candidate)
            return failf(125, "path too long: %.200s", path);
        struct stat st;
        if (lstat(candidate, &st) == 0 && S_ISLNK(st.st_mode)) {
            if (++links > MAX_LINKS)
                return failf(125, "too many levels of symbolic links: %.200s", path);
            char target[PATH_MAX];
            ssize_t n = readlink(candidate, target, sizeof target - 1);
            if (n < 0)
                return failf(125, "readlink %.200s: %s", candidate, strerror(errno));
            target[n] = '\0';
            if (target[0] == '/') {
                resolved[0] = '\0';
                rlen = 0;
            }
            char next[PATH_MAX * 2];
            if (snprintf(next, sizeof next, "%s/%s", target, p) >= (int)sizeof next)
                return failf(125, "path too long: %.200s", path);
            strcpy(rest, next);
            p = rest;
            continue;
        }
        if (rlen + 1 + plen >= sizeof resolved)
            return failf(125, "path too long: %.200s", path);
        resolved[rlen++] = '/';
        memcpy(resolved + rlen, part, plen + 1);
        rlen += plen;
    }
    if (snprintf(out, outsz, "%s%s", root, resolved) >= (int)outsz)
        return failf(125, "path too long: %.200s", path);
    return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX * 2];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* secure_join, then make the target (a directory, or an empty file) if it is missing. */
static int ensure_path(const char *root, const char *path, int is_dir, char *out, size_t outsz)
{
    if (secure_join(root, path, out, outsz) != 0)
        return -1;
    if (is_dir) {
        if (mkdir_p(out, 0755) != 0)
            return failf(125, "making the mount point %s: %s", path, strerror(errno));
        return 0;
    }
    char parent[PATH_MAX * 2];
    snprintf(parent, sizeof parent, "%s", out);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (mkdir_p(parent, 0755) != 0)
            return failf(125, "making the mount point %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (lstat(out, &st) != 0) {
        int fd = open(out, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
            return failf(125, "making the mount point %s: %s", path, strerror(errno));
        close(fd);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * mounts (runc's rootfs_linux.go order) */

static int mnt(const char *src, const char *target, const char *type, unsigned long flags, const char *data)
{
    if (mount(src, target, type, flags, data) == 0)
        return 0;
    return failf(125, "setting up the root filesystem: mount %s (%s%s%sflags %#lx): %s", target,
                 type ? "type " : "", type ? type : "", type ? ", " : "", flags, strerror(errno));
}

static int bind_mount(const char *src, const char *dst, int readonly, int recursive, unsigned long extra)
{
    if (mount(src, dst, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL) != 0)
        return failf(125, "setting up the root filesystem: bind %s on %s: %s", src, dst, strerror(errno));
    if (!readonly && !extra)
        return 0;
    unsigned long flags = MS_BIND | MS_REMOUNT | extra | (readonly ? MS_RDONLY : 0);
    if (mount(NULL, dst, NULL, flags, NULL) == 0)
        return 0;
    /* the source mount may carry locked flags (nosuid, nodev, noexec): keep them */
    struct statvfs sv;
    if (statvfs(dst, &sv) == 0) {
        if (sv.f_flag & ST_NOSUID)
            flags |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
            flags |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
            flags |= MS_NOEXEC;
    }
    return mnt(NULL, dst, NULL, flags, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * device files. CAP_MKNOD is in docker's default set, and jupybox has no device cgroup (docker's
 * refuses the open of a node it does not list): so no mount of a non-privileged container allows
 * device files (nodev), and the nodes it is given on purpose are bind mounts of their own, which
 * keep the flags of the mount they come from, not those of the nodev mount they land on. */

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define NR_MOUNT_SETATTR 442 /* the same number on every architecture */
#define ATTR_NODEV 0x4       /* MOUNT_ATTR_NODEV */
#define MAX_MOUNTINFO (64 << 20)

struct mount_attr_v0 {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* A whole /proc file (stat gives no size there), NUL-terminated; NULL with errno on failure. */
static char *read_proc(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (got + 1 >= cap) {
            char *more = cap < max ? realloc(buf, cap * 2) : NULL;
            if (!more) {
                free(buf);
                buf = NULL;
                errno = EFBIG;
                break;
            }
            buf = more;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + got, cap - got - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (n == 0) {
            buf[got] = '\0';
            break;
        }
        got += (size_t)n;
    }
    int e = errno;
    close(fd);
    errno = e;
    return buf;
}

/* A mount point as mountinfo writes it (\040 for a space, \011, \012, \134) decoded in place. */
static void unescape_octal(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* Without mount_setattr (kernels before 5.12, or a seccomp filter older than the call): every mount
 * at or under `target` remounted with nodev added to the flags it has (a remount must keep those
 * a user namespace locked). A mount hidden under another at the same place is out of reach, as it
 * is for the container. */
static int nodev_by_mountinfo(const char *target)
{
    char real[PATH_MAX];
    if (!realpath(target, real))
        return failf(125, "setting up the root filesystem: %s: %s", target, strerror(errno));
    size_t tl = strlen(real);
    char *data = read_proc("/proc/self/mountinfo", MAX_MOUNTINFO);
    if (!data)
        return failf(125, "setting up the root filesystem: reading /proc/self/mountinfo: %s", strerror(errno));
    int rc = 0;
    for (char *line = data; rc == 0 && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        /* id parent major:minor root mount-point mount-options ... */
        char *f[6];
        int n = 0;
        for (char *p = line; p && n < 6;) {
            f[n++] = p;
            p = strchr(p, ' ');
            if (p)
                *p++ = '\0';
        }
        if (n == 6) {
            unescape_octal(f[4]);
            if (!strncmp(f[4], real, tl) && (f[4][tl] == '\0' || f[4][tl] == '/')) {
                unsigned long flags = MS_BIND | MS_REMOUNT | MS_NODEV;
                int atime = 0;
                char *save = NULL;
                for (char *o = strtok_r(f[5], ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                    if (!strcmp(o, "ro"))
                        flags |= MS_RDONLY;
                    else if (!strcmp(o, "nosuid"))
                        flags |= MS_NOSUID;
                    else if (!strcmp(o, "noexec"))
                        flags |= MS_NOEXEC;
                    else if (!strcmp(o, "nodiratime"))
                        flags |= MS_NODIRATIME;
                    else if (!strcmp(o, "noatime"))
                        flags |= MS_NOATIME, atime = 1;
                    else if (!strcmp(o, "relatime"))
                        flags |= MS_RELATIME, atime = 1;
                }
                rc = mnt(NULL, f[4], NULL, flags | (atime ? 0 : MS_STRICTATIME), NULL);
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    return rc;
}

/* nodev on `target` and on every mount under it (a recursive bind brings its source's submounts). */
static int nodev_tree(const char *target)
{
    struct mount_attr_v0 attr = {ATTR_NODEV, 0, 0, 0};
    if (syscall(NR_MOUNT_SETATTR, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof attr) == 0)
        return 0;
    if (errno != ENOSYS && errno != EPERM)
        return failf(125, "setting up the root filesystem: nodev on %s: %s", target, strerror(errno));
    return nodev_by_mountinfo(target);
}

/* A mount destination must not lead into /proc (runc's checkProcMount): a bind there could hide
 * or replace what the kernel shows the container about itself. */
static int inside_proc(const char *root, const char *target)
{
    size_t rl = strlen(root);
    return !strncmp(target, root, rl) && !strncmp(target + rl, "/proc", 5) &&
           (target[rl + 5] == '\0' || target[rl + 5] == '/');
}

struct node {
    const char *path;           /* inside the container */
    mode_t mode;                /* type and permissions */
    dev_t rdev;
    long long uid, gid;         /* its owner (-1: root) */
    const char *host;           /* the host's node: bound instead in a user namespace */
};

/* Device nodes at their places in the container (before pivot_root).
 * In a user namespace, where mknod of a device is refused, the host's nodes are bound (podman's
 * way). Else fresh nodes: made in a scratch tmpfs mounted without nodev, each bound onto an empty
 * file at its place, then the scratch is detached. Never the host's own inodes in root mode: the
 * container's root could change their mode or owner. */
static int make_nodes(const char *root, const struct node *nodes, size_t n, int in_userns)
{
    char scratch[PATH_MAX * 2], src[PATH_MAX * 2 + 32], target[PATH_MAX * 2];
    if (!n)
        return 0;
    snprintf(scratch, sizeof scratch, "%s/dev/.jupybox-nodes", root);
    if (!in_userns) {
        if (mkdir(scratch, 0700) != 0)
            return failf(125, "setting up the root filesystem: mkdir %s: %s", scratch, strerror(errno));
        if (mnt("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=700,size=4k") != 0)
            return -1;
    }
    mode_t old = umask(0);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = ensure_path(root, nodes[i].path, 0, target, sizeof target);
        if (rc == 0 && inside_proc(root, target))
            rc = failf(125, "invalid device path %s: it resolves into /proc", nodes[i].path);
        if (rc != 0)
            break;
        if (in_userns) {
            rc = bind_mount(nodes[i].host, target, 0, 0, 0);
            continue;
        }
        snprintf(src, sizeof src, "%s/%zu", scratch, i);
        if (mknod(src, nodes[i].mode, nodes[i].rdev) != 0)
            rc = failf(125, "setting up the root filesystem: mknod %s: %s", nodes[i].path, strerror(errno));
        else if (nodes[i].uid >= 0 && chown(src, (uid_t)nodes[i].uid, (gid_t)nodes[i].gid) != 0)
            rc = failf(125, "setting up the root filesystem: chown %s: %s", nodes[i].path, strerror(errno));
        else
            rc = bind_mount(src, target, 0, 0, 0);
    }
    umask(old);
    if (!in_userns && (umount2(scratch, MNT_DETACH) != 0 || rmdir(scratch) != 0) && rc == 0)
        rc = failf(125, "setting up the root filesystem: detaching %s: %s", scratch, strerror(errno));
    return rc;
}

static int in_userns(const char *userns)
{
    return userns && *userns && strcmp(userns, "none") != 0;
}

static const struct {
    const char *name;
    unsigned maj, min;
} DEVICES[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};
#define NDEVICES (sizeof DEVICES / sizeof *DEVICES)

static const char *const DEV_LINKS[][2] = {
    {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
};

#define SHM_SIZE (64LL << 20) /* docker's default --shm-size */

static int setup_dev(const char *root, struct plan *pl)
{
    char dev[PATH_MAX * 2], path[PATH_MAX * 2];
    const char *userns = pl->dev_userns;
    /* --privileged keeps device files usable everywhere, and its nodes made in place */
    int privileged = pl->privileged, userns_nodes = in_userns(userns);
    if (ensure_path(root, "/dev", 1, dev, sizeof dev) != 0)
        return -1;
    if (mnt("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME | (privileged ? 0 : MS_NODEV), "mode=755,size=65536k") != 0)
        return -1;
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof DEV_LINKS / sizeof *DEV_LINKS; i++) {
        snprintf(path, sizeof path, "%s/%s", dev, DEV_LINKS[i][0]);
        symlink(DEV_LINKS[i][1], path);
    }
    static const char *const subs[] = {"pts", "shm", "mqueue"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dev, subs[i]);
        mkdir(path, 0755);
    }
    if (privileged && !userns_nodes) {
        for (size_t i = 0; i < NDEVICES; i++) {
            snprintf(path, sizeof path, "%s/%s", dev, DEVICES[i].name);
            if (mknod(path, S_IFCHR | 0666, makedev(DEVICES[i].maj, DEVICES[i].min)) != 0) {
                umask(old);
                return failf(125, "setting up the root filesystem: mknod %s: %s", path, strerror(errno));
            }
        }
        umask(old);
    } else {
        umask(old);
        struct node nodes[NDEVICES];
        char names[NDEVICES][2][32];
        for (size_t i = 0; i < NDEVICES; i++) {
            snprintf(names[i][0], sizeof names[i][0], "/dev/%s", DEVICES[i].name);
            nodes[i] = (struct node){names[i][0], S_IFCHR | 0666, makedev(DEVICES[i].maj, DEVICES[i].min), -1, -1,
                                     names[i][0]};
        }
        if (make_nodes(root, nodes, NDEVICES, userns_nodes) != 0)
            return -1;
    }
    /* gid 5 (tty) exists inside unless only root is mapped */
    const char *pts_opts = (userns && !strcmp(userns, "single")) ? "newinstance,ptmxmode=0666,mode=0620"
                                                                 : "newinstance,ptmxmode=0666,mode=0620,gid=5";
    snprintf(path, sizeof path, "%s/pts", dev);
    if (mnt("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, pts_opts) != 0)
        return -1;
    char shm_opts[64];
    snprintf(shm_opts, sizeof shm_opts, "mode=1777,size=%lld", pl->shm_size > 0 ? pl->shm_size : SHM_SIZE);
    snprintf(path, sizeof path, "%s/shm", dev);
    if (mnt("shm", path, "tmpfs", NOSUID_NODEV_NOEXEC, shm_opts) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/mqueue", dev);
    return mnt("mqueue", path, "mqueue", NOSUID_NODEV_NOEXEC, NULL);
}

/* --device: the host's nodes, each as a fresh node of the same type, numbers, mode and owner (or
 * the host's node itself, bound, in a user namespace); made after the other mounts, as runc does. */
static int setup_devices(const char *root, struct plan *pl)
{
    size_t n = pl->devices.n / 8;
    if (!n)
        return 0;
    struct node *nodes = calloc(n, sizeof *nodes);
    if (!nodes)
        return failf(125, "setting up the root filesystem: out of memory");
    for (size_t i = 0; i < n; i++) {
        char **v = pl->devices.v + 8 * i;
        if (strcmp(v[1], "c") && strcmp(v[1], "b")) {
            free(nodes);
            return failf(125, "starting the container: a malformed device in its plan: %.40s", v[1]);
        }
        nodes[i] = (struct node){v[0], (v[1][0] == 'b' ? S_IFBLK : S_IFCHR) | ((mode_t)num(v[4]) & 0777),
                                 makedev((unsigned)num(v[2]), (unsigned)num(v[3])), num(v[5]), num(v[6]), v[7]};
    }
    int rc = make_nodes(root, nodes, n, in_userns(pl->dev_userns));
    free(nodes);
    return rc;
}

static int setup_sys(const char *root, struct plan *pl)
{
    char sys[PATH_MAX * 2], cg[PATH_MAX * 2], target[PATH_MAX * 2];
    if (ensure_path(root, "/sys", 1, sys, sizeof sys) != 0)
        return -1;
    if (pl->new_netns) {
        if (mnt("sysfs", sys, "sysfs", NOSUID_NODEV_NOEXEC | MS_RDONLY, NULL) != 0)
            return -1;
    } else if (bind_mount("/sys", sys, 1, 1, 0) != 0 || (!pl->privileged && nodev_tree(sys) != 0)) {
        /* sysfs shows the network namespace of its mounter: with the host's network, bind it */
        return -1;
    }
    size_t n = pl->cgroup_mounts.n / 2;
    if (!n)
        return 0;
    snprintf(cg, sizeof cg, "%s/fs/cgroup", sys);
    struct stat st;
    if (stat(cg, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    char **v = pl->cgroup_mounts.v;
    if (n == 1 && !*v[1])
        return bind_mount(v[0], cg, 1, 0, NOSUID_NODEV_NOEXEC);
    if (mnt("cgroup", cg, "tmpfs", NOSUID_NODEV_NOEXEC, "mode=755,size=64k") != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(target, sizeof target, "%s/%s", cg, v[2 * i + 1]);
        mkdir(target, 0755);
        if (bind_mount(v[2 * i], target, 1, 0, NOSUID_NODEV_NOEXEC) != 0)
            return -1;
    }
    return mnt(NULL, cg, NULL, MS_REMOUNT | MS_RDONLY | NOSUID_NODEV_NOEXEC, "mode=755,size=64k");
}

static int mask_paths(const char *root, struct plan *pl)
{
    char target[PATH_MAX * 2], devnull[PATH_MAX * 2];
    snprintf(devnull, sizeof devnull, "%s/dev/null", root);
    for (size_t i = 0; i < pl->masked.n; i++) {
        if (secure_join(root, pl->masked.v[i], target, sizeof target) != 0)
            return -1;
        struct stat st;
        if (lstat(target, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (mnt("tmpfs", target, "tmpfs", MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0") != 0)
                return -1;
        } else if (bind_mount(devnull, target, 0, 0, 0) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < pl->readonly.n; i++) {
        if (secure_join(root, pl->readonly.v[i], target, sizeof target) != 0)
            return -1;
        struct stat st;
        if (lstat(target, &st) == 0 && bind_mount(target, target, 1, 1, NOSUID_NODEV_NOEXEC) != 0)
            return -1;
    }
    return 0;
}

/* Rootless on kernels without overlayfs in user namespaces (< 5.11): the FUSE version. Its daemon
 * lives in a copy of this mount namespace (pivot_root would otherwise move its root onto its own
 * mount), and its mount reaches this one because the target is shared. */
static int fuse_overlayfs(const char *options, const char *target)
{
    char opts[8192];
    size_t o = 0;
    /* userxattr is the kernel overlay's option, not fuse-overlayfs's */
    const char *p = options;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!(len == 9 && !strncmp(p, "userxattr", 9))) {
            if (o + len + 2 >= sizeof opts)
                return failf(125, "fuse-overlayfs: options too long");
            if (o)
                opts[o++] = ',';
            memcpy(opts + o, p, len);
            o += len;
        }
        p += len + (end ? 1 : 0);
    }
    opts[o] = '\0';
    if (mnt(target, target, NULL, MS_BIND, NULL) != 0 || mnt(NULL, target, NULL, MS_SHARED, NULL) != 0)
        return -1;
    int err = (int)syscall(SYS_memfd_create, "fuse-overlayfs-stderr", MFD_CLOEXEC);
    pid_t child = fork();
    if (child < 0)
        return failf(125, "fuse-overlayfs: fork: %s", strerror(errno));
    if (child == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (err >= 0)
            dup2(err, 2);
        /* the daemon outlives this moment: it must hold none of our pipes (the service would wait
         * for their EOF for ever) */
        job_cloexec_from(3);
        char *const argv[] = {"unshare", "--mount", "--propagation", "unchanged", "--", "fuse-overlayfs",
                              "-o", opts, (char *)target, NULL};
        char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
        execvpe("unshare", argv, envp);
        _exit(127);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char buf[1024] = "";
        if (err >= 0) {
            ssize_t n = pread(err, buf, sizeof buf - 1, 0);
            buf[n > 0 ? n : 0] = '\0';
            /* the last line */
            char *last = buf;
            for (char *q = buf; *q; q++) {
                if (*q == '\n' && q[1])
                    last = q + 1;
            }
            size_t l = strlen(last);
            if (l && last[l - 1] == '\n')
                last[l - 1] = '\0';
            if (*last)
                return failf(125, "setting up the root filesystem: fuse-overlayfs: %s", last);
        }
        return failf(125, "setting up the root filesystem: fuse-overlayfs: exit status %d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    if (err >= 0)
        close(err);
    return mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL); /* pivot_root refuses shared mounts */
}

/* runc's order: pivot_root(".", ".") then detach the old root stacked underneath. */
static int pivot(const char *root)
{
    int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    int new_root = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (old_root < 0 || new_root < 0)
        return failf(125, "setting up the root filesystem: open %s: %s", root, strerror(errno));
    if (fchdir(new_root) != 0 || syscall(SYS_pivot_root, ".", ".") != 0)
        return failf(125, "setting up the root filesystem: pivot_root %s: %s", root, strerror(errno));
    if (fchdir(old_root) != 0 || mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) != 0 ||
        umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
        return failf(125, "setting up the root filesystem: detaching the old root: %s", strerror(errno));
    close(old_root);
    close(new_root);
    return 0;
}

static int setup_rootfs(struct plan *pl)
{
    const char *root = pl->rootfs;
    char target[PATH_MAX * 2];
    if (!root || !*root)
        return failf(125, "setting up the root filesystem: no root in the plan");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        if (errno == EINVAL)
            return failf(125, "setting up the root filesystem: / is not a mount point (is jupybox running in a "
                              "chroot?): run it where / is a mount point, e.g. after `mount --bind / /` in its "
                              "mount namespace, or with pivot_root instead of chroot");
        return failf(125, "setting up the root filesystem: making / private: %s", strerror(errno));
    }
    /* overlayfs's options name the layers relative to the store: a store path with ',' or ':'
     * would otherwise be read as option separators */
    if (pl->workdir_for_mounts && chdir(pl->workdir_for_mounts) != 0)
        return failf(125, "setting up the root filesystem: chdir %s: %s", pl->workdir_for_mounts, strerror(errno));
    if (pl->fuse_overlayfs) {
        if (fuse_overlayfs(pl->fuse_overlayfs, root) != 0)
            return -1;
    } else if (mnt("overlay", root, "overlay", pl->privileged ? 0 : MS_NODEV, pl->overlay) != 0) {
        return -1;
    }
    if (pl->fuse_overlayfs && !pl->privileged && nodev_tree(root) != 0)
        return -1;
    if (chdir("/") != 0)
        return failf(125, "setting up the root filesystem: chdir /: %s", strerror(errno));
    /* /proc, /dev and /sys are jupybox's to make: an image that makes one of them a symlink
     * (/dev -> /proc) would have them mounted over each other */
    static const char *const special[] = {"proc", "dev", "sys"};
    for (size_t i = 0; i < 3; i++) {
        struct stat st;
        snprintf(target, sizeof target, "%s/%s", root, special[i]);
        if (lstat(target, &st) == 0 && !S_ISDIR(st.st_mode))
            return failf(125, "refusing the image: its /%s is %s, not a directory (a container's /proc, /sys and "
                              "/dev are made by jupybox)", special[i],
                         S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
    }
    if (ensure_path(root, "/proc", 1, target, sizeof target) != 0 ||
        mnt("proc", target, "proc", NOSUID_NODEV_NOEXEC, NULL) != 0)
        return -1;
    if (setup_dev(root, pl) != 0 || setup_sys(root, pl) != 0)
        return -1;
    char **v = pl->mounts.v;
    for (size_t i = 0; i + 7 <= pl->mounts.n; i += 7) {
        const char *kind = v[i], *src = v[i + 1], *dest = v[i + 2];
        int ro = !strcmp(v[i + 3], "1"), is_dir = !strcmp(v[i + 4], "1");
        unsigned long extra = (unsigned long)num(v[i + 5]);
        const char *options = v[i + 6];
        if (ensure_path(root, dest, !strcmp(kind, "tmpfs") ? 1 : is_dir, target, sizeof target) != 0)
            return -1;
        if (inside_proc(root, target))
            return failf(125, "invalid mount destination %s: it resolves into /proc", dest);
        if (!strcmp(kind, "tmpfs")) {
            if (mnt("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0),
                    *options ? options : "mode=1777") != 0)
                return -1;
        } else if (!strcmp(kind, "mask")) {
            /* a secret file covered by the container's own /dev/null */
            char devnull[PATH_MAX * 2];
            snprintf(devnull, sizeof devnull, "%s/dev/null", root);
            if (bind_mount(devnull, target, ro, 0, 0) != 0)
                return -1;
        } else if (bind_mount(src, target, ro, 1, extra) != 0 || (!pl->privileged && nodev_tree(target) != 0)) {
            return -1;
        }
    }
    if (setup_devices(root, pl) != 0)
        return -1;
    if (!pl->privileged && mask_paths(root, pl) != 0)
        return -1;
    if (pl->readonly_rootfs &&
        mnt(NULL, root, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | (pl->privileged ? 0 : MS_NODEV), NULL) != 0)
        return -1;
    return pivot(root);
}

/* ---------------------------------------------------------------------------------------------
 * the user, from the container's own /etc/passwd and /etc/group (docker's rules) */

struct user {
    long long uid, gid;
    gid_t groups[NGROUPS_MAX];
    size_t ngroups;
    char home[PATH_MAX];
};

/* The whole file, NUL-terminated, or NULL (missing, not a regular file, too large). */
static char *slurp(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (buf)
        buf[got] = '\0';
    return buf;
}

/* Split one line of a colon-separated file into at most `max` fields (in place). */
static int split_line(char *line, char **fields, int max)
{
    int n = 0;
    fields[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == ':') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    }
    return n;
}

/* The first line whose field `key_field` equals `key`; its fields in `out` (copies in `store`). */
static int lookup(const char *file, int key_field, const char *key, char **out, int max, char **store)
{
    char *data = slurp(file);
    *store = data;
    if (!data)
        return 0;
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        int n = split_line(line, out, max);
        if (n >= 4 && !strcmp(out[key_field], key))
            return n;
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return 0;
    }
    return 1;
}

static int parse_id(const char *s, long long *out, const char *what)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > MAX_ID)
        return failf(125, "%s %s: uids and gids must be in range 0-%lld", what, s, MAX_ID);
    *out = v;
    return 0;
}

/* Not `*to = *from`: that writes all of groups[] (256 KiB), pages PID 1 would keep for good */
static void copy_user(struct user *to, const struct user *from)
{
    to->uid = from->uid;
    to->gid = from->gid;
    to->ngroups = from->ngroups;
    memcpy(to->groups, from->groups, from->ngroups * sizeof *to->groups);
    memcpy(to->home, from->home, strlen(from->home) + 1);
}

static int resolve_user(const char *spec, int code, struct user *u)
{
    char namebuf[1024];
    snprintf(namebuf, sizeof namebuf, "%s", spec && *spec ? spec : "0");
    char *name = namebuf, *group = strchr(namebuf, ':');
    if (group)
        *group++ = '\0';
    char *f[8], *store = NULL;
    int n;
    /* not memset: groups[] is 256 KiB (NGROUPS_MAX) and a PID 1 keeps every stack page it
     * touches for its whole life; only the first ngroups entries are ever read */
    u->uid = u->gid = 0;
    u->ngroups = 0;
    u->home[0] = '\0';
    if (all_digits(name)) {
        if (parse_id(name, &u->uid, "invalid user") != 0)
            return err_code = code, -1;
        n = lookup("/etc/passwd", 2, name, f, 7, &store);
    } else {
        n = lookup("/etc/passwd", 0, name, f, 7, &store);
        if (!n) {
            free(store);
            return failf(code, "unable to find user %s: no matching entries in passwd file", name);
        }
        if (parse_id(f[2], &u->uid, "invalid uid in /etc/passwd for") != 0) {
            free(store);
            return err_code = code, -1;
        }
    }
    char username[256] = "";
    u->gid = 0;
    snprintf(u->home, sizeof u->home, "/");
    if (n) {
        if (parse_id(f[3], &u->gid, "invalid gid in /etc/passwd:") != 0) {
            free(store);
            return err_code = code, -1;
        }
        if (n > 5 && *f[5])
            snprintf(u->home, sizeof u->home, "%s", f[5]);
        snprintf(username, sizeof username, "%s", f[0]);
    }
    free(store);
    if (group && *group) {
        if (all_digits(group)) {
            if (parse_id(group, &u->gid, "invalid group") != 0)
                return err_code = code, -1;
        } else {
            char *g[4];
            int gn = lookup("/etc/group", 0, group, g, 4, &store);
            if (!gn) {
                free(store);
                return failf(code, "unable to find group %s: no matching entries in group file", group);
            }
            int bad = parse_id(g[2], &u->gid, "invalid gid in /etc/group for");
            free(store);
            if (bad)
                return err_code = code, -1;
        }
    }
    if (*username) {
        char *data = slurp("/etc/group");
        for (char *line = data; line && *line && u->ngroups < NGROUPS_MAX;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            char *g[4];
            if (split_line(line, g, 4) >= 4) {
                for (char *m = strtok(g[3], ","); m; m = strtok(NULL, ",")) {
                    long long gid;
                    if (!strcmp(m, username) && all_digits(g[2]) && parse_id(g[2], &gid, "") == 0) {
                        u->groups[u->ngroups++] = (gid_t)gid;
                        break;
                    }
                }
            }
            line = nl ? nl + 1 : NULL;
        }
        free(data);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * the process: its security settings and its executable */

/* The plan's security for this user, in a job (docker's defaults unless privileged). */
static int make_job(struct plan *pl, struct user *u, struct job *j, int code)
{
    memset(j, 0, sizeof *j);
    j->fds[0] = j->fds[1] = j->fds[2] = -1;
    j->gid = j->uid = -1;
    j->set_caps = 1;
    j->caps = pl->caps;
    j->last_cap = pl->last_cap;
    const char *userns = pl->userns ? pl->userns : "none";
    if (!strcmp(userns, "single")) {
        /* setgroups is denied in a single-id namespace, and no other id exists */
        if (u->uid != 0 || u->gid != 0)
            return failf(code, "cannot switch to user %lld:%lld: %s", u->uid, u->gid, SINGLE_ID);
    } else if (u->uid != 0 || u->gid != 0 || u->ngroups || !strcmp(userns, "full")) {
        j->set_groups = 1;
        j->groups = u->groups;
        j->ngroups = u->ngroups;
        j->gid = u->gid;
    }
    if (u->uid != 0)
        j->uid = u->uid; /* setuid away from root clears the effective capabilities */
    for (size_t i = 0; i < pl->rlimits.n && j->nrlimits < MAX_RLIMITS; i++) {
        /* "resource soft hard" (--ulimit; RLIM_INFINITY as -1) or "resource value" (both) */
        int res;
        long long soft, hard;
        int got = sscanf(pl->rlimits.v[i], "%d %lld %lld", &res, &soft, &hard);
        if (got < 2)
            continue;
        if (got == 2)
            hard = soft;
        rlim_t s = soft < 0 ? RLIM_INFINITY : (rlim_t)soft, h = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
        /* never above the hard limit we were given: raising one needs CAP_SYS_RESOURCE (the
         * service refuses such a --ulimit; the limits that stand in for cgroups are clamped) */
        struct rlimit cur;
        if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
            if (h > cur.rlim_max)
                h = cur.rlim_max;
            if (s > h)
                s = h;
        }
        j->rl_resource[j->nrlimits] = res;
        j->rl_value[j->nrlimits].rlim_cur = s;
        j->rl_value[j->nrlimits].rlim_max = h;
        j->nrlimits++;
    }
    /* no_new_privs: set unless privileged, or as --security-opt no-new-privileges says */
    j->no_new_privs = pl->no_new_privs >= 0 ? pl->no_new_privs : !pl->privileged;
    if (!pl->privileged && pl->seccomp_len) {
        j->prog.len = (unsigned short)(pl->seccomp_len / sizeof(struct sock_filter));
        j->prog.filter = (struct sock_filter *)pl->seccomp;
        /* without no_new_privs loading a filter takes CAP_SYS_ADMIN: before the capabilities go */
        j->seccomp_first = !j->no_new_privs;
    }
    return 0;
}

static const char *env_get(char **env, const char *key)
{
    size_t kl = strlen(key);
    for (; env && *env; env++) {
        if (!strncmp(*env, key, kl) && (*env)[kl] == '=')
            return *env + kl + 1;
    }
    return NULL;
}

/* Docker's lookup: a name with a slash is used as is, else each PATH entry is tried. */
static int find_executable(const char *name, char **env, char *out, size_t outsz)
{
    char denied[PATH_MAX + 64] = "";
    if (!*name)
        return failf(127, "exec: \"\": executable file not found in $PATH");
    const char *path = env_get(env, "PATH");
    if (!path)
        path = "/usr/bin:/bin";
    const char *p = strchr(name, '/') ? NULL : path;
    for (;;) {
        char candidate[PATH_MAX * 2];
        if (!p) {
            snprintf(candidate, sizeof candidate, "%s", name);
        } else {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            snprintf(candidate, sizeof candidate, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", name);
            p = end ? end + 1 : NULL;
        }
        struct stat st;
        if (stat(candidate, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                if (!*denied)
                    snprintf(denied, sizeof denied, "%s: is a directory", candidate);
            } else if (access(candidate, X_OK) != 0) {
                if (!*denied)
                    snprintf(denied, sizeof denied, "%s: permission denied", candidate);
            } else {
                snprintf(out, outsz, "%s", candidate);
                return 0;
            }
        }
        if (!p || strchr(name, '/'))
            break;
    }
    if (*denied)
        return failf(126, "exec: %s", denied);
    if (strchr(name, '/'))
        return failf(127, "exec: %s: no such file or directory", name);
    return failf(127, "exec: \"%s\": executable file not found in $PATH", name);
}

/* After the credentials: stdio, rlimits, the working directory, the executable, execve. Never
 * returns: a failure is reported with docker's exit code. */
static void __attribute__((noreturn)) exec_command(struct plan *pl, struct job *j, int with_credentials)
{
    char path[PATH_MAX * 2];
    job_default_signals();
    if (job_stdio(j) != 0)
        die(125, "starting the command: %s: %s", step_names[j->failed_step], strerror(j->failed_errno));
    if ((with_credentials ? job_credentials(j, 1) : job_rlimits(j)) != 0)
        die(125, "%s: %s", step_names[j->failed_step], strerror(j->failed_errno));
    if (pl->cwd && chdir(pl->cwd) != 0)
        die(errno == EACCES ? 126 : 125, "chdir to cwd (%s): %s", pl->cwd, strerror(errno));
    if (find_executable(pl->argv.v[0], pl->env.v, path, sizeof path) != 0)
        report_and_exit();
    job_unblock_signals();
    execve(path, pl->argv.v, pl->env.v);
    int e = errno;
    die(e == EACCES || e == ENOEXEC || e == EPERM ? 126 : e == ENOENT ? 127 : 125, "exec %s: %s",
        pl->argv.v[0], strerror(e));
}

/* The environment with the user's HOME unless the plan sets one. */
static void add_home(struct plan *pl, struct user *u)
{
    if (!env_get(pl->env.v, "HOME")) {
        static char home[PATH_MAX + 8];
        snprintf(home, sizeof home, "HOME=%s", u->home);
        strv_push(&pl->env, home);
    }
}

/* ---------------------------------------------------------------------------------------------
 * PID 1 */

static const int FORWARDED[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM,
                                SIGPIPE};

static void forwarded_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++)
        sigaddset(set, FORWARDED[i]);
    sigaddset(set, SIGCHLD);
}

static void loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
}

/* The service left while it started us, or before: a container no one watches must not run. */
static void exit_if_orphaned(void)
{
    struct pollfd p = {FD_CTL, POLLIN, 0};
    char c;
    if (poll(&p, 1, 0) == 1 && recv(FD_CTL, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
        _exit(0);
}

/* The command has exited with `code`: tell the service, wait for its release, exit like it. */
static void __attribute__((noreturn)) finish(int code, int linger)
{
    char buf[16];
    int n = snprintf(buf, sizeof buf, "X%d", code);
    write_all(FD_STATUS_W, buf, (size_t)n);
    if (linger) {
        /* the namespaces' teardown in our exit takes a CPU for a millisecond or two: the service
         * lets us go once its client has the exit */
        struct msg m;
        int r = recv_msg(FD_CTL, &m);
        if (r != 0) {
            /* the service died: our exit code waits in the status pipe for its successor, which
             * ends us with SIGKILL once it has read it */
            sigset_t all;
            sigfillset(&all);
            for (;;)
                sigwaitinfo(&all, NULL);
        }
    }
    _exit(code);
}

/* The stack pages below this frame go back to the kernel. The setup's path buffers touched
 * 80-100 KiB of stack (host paths among what they held), and a page once touched stays for the
 * process's life: PID 1 lives as long as the container. Nothing lives below the stack pointer,
 * and the kernel leaves a gap of at least 128 MiB between the stack and any other mapping, so the
 * range holds only stack pages (its unmapped part makes madvise say ENOMEM: ignored). */
static void __attribute__((noinline)) release_stack(void)
{
    volatile char here = 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t top = ((uintptr_t)&here - page) & ~(page - 1); /* this frame and the ones above stay */
    size_t len = 512 * 1024;
    if (top > len)
        madvise((void *)(top - len), len, MADV_DONTNEED);
    (void)here;
}

static void __attribute__((noreturn)) run_init(struct plan *pl, struct user *u, int *stdio, int dumpable)
{
    struct job j;
    add_home(pl, u);
    if (make_job(pl, u, &j, 125) != 0)
        report_and_exit();
    for (int i = 0; i < 3; i++)
        j.fds[i] = stdio[i];
    if (!pl->init) {
        /* --no-init: the command itself is PID 1; it outlives a crash of the service */
        prctl(PR_SET_PDEATHSIG, 0);
        close(FD_STATUS_R);
        exec_command(pl, &j, 1);
    }
    /* PID 1 takes the container's credentials itself: whatever it runs as is no more than the
     * container (rlimits only for the command: PID 1 must not count against RLIMIT_NPROC) */
    if (job_credentials(&j, 0) != 0)
        die(125, "%s: %s", step_names[j.failed_step], strerror(j.failed_errno));
    prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    /* from now on the container outlives a crash of the service (which re-adopts it) */
    prctl(PR_SET_PDEATHSIG, 0);
    pid_t child = fork();
    if (child < 0)
        die(125, "starting the command: fork: %s", strerror(errno));
    if (child == 0)
        exec_command(pl, &j, 0);
    for (int i = 0; i < 3; i++) {
        if (stdio[i] > 2)
            close(stdio[i]);
    }
    close(FD_REPORT); /* the service reads EOF once the command is exec'ed */
    int linger = pl->linger;
    /* nothing of the plan (host paths among it) stays in our memory */
    for (int i = 0; i < 2; i++) {
        if (plan_msgs[i])
            free_msg(plan_msgs[i]);
    }
    release_stack();
    sigset_t set;
    forwarded_set(&set);
    int code = 0;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status, done = 0;
        pid_t p;
        while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
            if (p == child) {
                code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                done = 1;
            }
        }
        if (done)
            break;
    }
    finish(code, linger);
}

static void __attribute__((noreturn)) pid1(int new_netns, int dumpable)
{
    sigset_t set;
    forwarded_set(&set);
    /* held until the command exists, then forwarded to it (tini delivers them so too) */
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (new_netns)
        loopback_up();
    int rootfs_done = 0, early_failed = 0, armed_failed = 0, early_code = 0, armed_code = 0;
    char early_msg[sizeof err_msg], armed_msg[sizeof err_msg];
    struct msg armed_msg_buf = {0};
    struct plan armed;
    struct user armed_user;
    int have_armed = 0;
    for (;;) {
        struct msg m;
        int r = recv_msg(FD_CTL, &m);
        if (r == 1)
            _exit(0); /* the sandbox was discarded */
        if (r < 0)
            die(125, "starting the container: a broken message from the service");
        if (m.type == 'R') {
            /* the root filesystem now, while nobody waits; a failure waits for the start */
            struct plan pl;
            parse_plan(&m, &pl);
            if (!early_failed && setup_rootfs(&pl) != 0) {
                early_failed = 1;
                early_code = err_code;
                snprintf(early_msg, sizeof early_msg, "%s", err_msg);
            }
            rootfs_done = !early_failed;
            free_msg(&m);
            continue;
        }
        if (m.type == 'A') {
            /* a plan that repeats the last one: everything but the exec, now */
            if (have_armed)
                free_msg(&armed_msg_buf);
            parse_plan(&m, &armed);
            armed_msg_buf = m;
            have_armed = 1;
            if (early_failed)
                continue;
            if ((!rootfs_done && !armed.rootfs_ready && setup_rootfs(&armed) != 0) ||
                (armed.hostname && *armed.hostname && sethostname(armed.hostname, strlen(armed.hostname)) != 0 &&
                 failf(125, "sethostname %s: %s", armed.hostname, strerror(errno))) ||
                resolve_user(armed.user, 125, &armed_user) != 0) {
                armed_failed = 1;
                armed_code = err_code;
                snprintf(armed_msg, sizeof armed_msg, "%s", err_msg);
            } else {
                rootfs_done = 1;
            }
            continue;
        }
        if (m.type != 'S' && m.type != 'G') {
            free_msg(&m);
            continue;
        }
        /* the start: from here on the sandbox dies with the service until the command runs */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        exit_if_orphaned();
        int stdio[3] = {-1, -1, -1};
        if (m.nfds >= 3) {
            for (int i = 0; i < 3; i++)
                stdio[i] = m.fds[i];
        }
        if (early_failed) {
            err_code = early_code;
            snprintf(err_msg, sizeof err_msg, "%s", early_msg);
            report_and_exit();
        }
        struct plan pl;
        struct user user;
        plan_msgs[0] = &m;
        plan_msgs[1] = have_armed ? &armed_msg_buf : NULL;
        if (m.type == 'G') {
            if (!have_armed)
                die(125, "starting the container: it was not prepared");
            if (armed_failed) {
                err_code = armed_code;
                snprintf(err_msg, sizeof err_msg, "%s", armed_msg);
                report_and_exit();
            }
            struct plan go;
            parse_plan(&m, &go);
            pl = armed;
            pl.linger = go.linger;
            copy_user(&user, &armed_user);
        } else {
            parse_plan(&m, &pl);
            if (rootfs_done && !pl.rootfs_ready)
                die(125, "starting the container: its root filesystem was made for another one");
            if (!rootfs_done && !pl.rootfs_ready && setup_rootfs(&pl) != 0)
                report_and_exit();
            if (pl.hostname && *pl.hostname && sethostname(pl.hostname, strlen(pl.hostname)) != 0)
                die(125, "sethostname %s: %s", pl.hostname, strerror(errno));
            if (resolve_user(pl.user, 125, &user) != 0)
                report_and_exit();
        }
        if (!pl.argv.n)
            die(125, "starting the container: no command");
        /* the working directory, made if missing (docker does), once the container surely starts */
        struct stat st;
        if (pl.cwd && (stat(pl.cwd, &st) != 0 || !S_ISDIR(st.st_mode)) && mkdir_p(pl.cwd, 0755) != 0)
            die(125, "creating the working directory %s: %s", pl.cwd, strerror(errno));
        if (!pl.linger)
            close(FD_CTL);
        run_init(&pl, &user, stdio, dumpable);
    }
}

/* ---------------------------------------------------------------------------------------------
 * H: the sandbox's helper, and the exec joiner */

struct config {
    int exec_mode, new_netns, nprocs, dumpable;
    long long flags;
    pid_t parent;
    char *userns;
    struct strv uid_map, gid_map;
};

static void parse_config(const struct msg *m, struct config *c)
{
    memset(c, 0, sizeof *c);
    c->userns = "none";
    uint32_t pos = 1;
    struct field f;
    int r;
    while ((r = next_field(m, &pos, &f)) > 0) {
        switch (f.tag) {
        case 'm': c->exec_mode = !strcmp(f.val, "exec"); break;
        case 'f': c->flags = num(f.val); break;
        case 'n': c->new_netns = (int)num(f.val); break;
        case 'u': c->userns = f.val; break;
        case 'U': strv_push(&c->uid_map, f.val); break;
        case 'G': strv_push(&c->gid_map, f.val); break;
        case 'p': c->nprocs = (int)num(f.val); break;
        case 'P': c->parent = (pid_t)num(f.val); break;
        case 'D': c->dumpable = (int)num(f.val); break;
        default: break;
        }
    }
    if (r < 0)
        die(125, "starting the container: a malformed configuration");
}

static void join_cgroups(int n)
{
    for (int i = 0; i < n; i++) {
        if (write(FD_PROCS + i, "0", 1) != 1)
            die(125, "joining the container's cgroup: %s", strerror(errno));
        close(FD_PROCS + i);
    }
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void map_text(struct strv *lines, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < lines->n && o < outsz; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%s\n", lines->v[i]);
}

/* newuidmap/newgidmap for `pid`, run outside its user namespace; '' or why they failed. */
static void run_mappers(pid_t pid, struct config *c, char *err, size_t errsz)
{
    struct {
        const char *tool;
        struct strv *lines;
    } tools[] = {{"newuidmap", &c->uid_map}, {"newgidmap", &c->gid_map}};
    err[0] = '\0';
    for (int t = 0; t < 2; t++) {
        struct strv args = {0};
        char pidbuf[16];
        snprintf(pidbuf, sizeof pidbuf, "%d", pid);
        strv_push(&args, (char *)tools[t].tool);
        strv_push(&args, pidbuf);
        for (size_t i = 0; i < tools[t].lines->n; i++) {
            /* "inside outside count" */
            char *copy = strdup(tools[t].lines->v[i]);
            for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " "))
                strv_push(&args, tok);
        }
        int out[2];
        if (pipe2(out, O_CLOEXEC) != 0) {
            snprintf(err, errsz, "%s: pipe: %s", tools[t].tool, strerror(errno));
            return;
        }
        pid_t child = fork();
        if (child == 0) {
            dup2(out[1], 1);
            dup2(out[1], 2);
            job_cloexec_from(3);
            char *const envp[] = {"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C", NULL};
            execvpe(tools[t].tool, args.v, envp);
            dprintf(2, "%s: %s\n", tools[t].tool, strerror(errno));
            _exit(127);
        }
        close(out[1]);
        char buf[2048];
        read_text(out[0], buf, sizeof buf);
        close(out[0]);
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        if (status != 0) {
            char *last = buf;
            for (char *q = buf; *q; q++) {
                if (*q == '\n' && q[1])
                    last = q + 1;
            }
            size_t l = strlen(last);
            while (l && (last[l - 1] == '\n' || last[l - 1] == ' '))
                last[--l] = '\0';
            if (*last && !strncmp(last, tools[t].tool, strlen(tools[t].tool)))
                snprintf(err, errsz, "%s failed: %s", tools[t].tool, last + strlen(tools[t].tool) + 2);
            else if (*last)
                snprintf(err, errsz, "%s failed: %s", tools[t].tool, last);
            else
                snprintf(err, errsz, "%s failed: exit status %d", tools[t].tool,
                         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            return;
        }
    }
}

/* unshare the namespaces; rootless, a user namespace first that owns the others (runc's order). */
static void enter_namespaces(struct config *c)
{
    int flags = (int)c->flags;
    if (!strcmp(c->userns, "none")) {
        if (unshare(flags) != 0)
            die(125, "creating the container's namespaces: [Errno %d] %s", errno, strerror(errno));
        return;
    }
    if (!strcmp(c->userns, "single")) {
        char text[256];
        if (unshare(CLONE_NEWUSER | flags) != 0)
            die(125, "creating the container's namespaces: [Errno %d] %s", errno, strerror(errno));
        map_text(&c->uid_map, text, sizeof text);
        if (write_file("/proc/self/setgroups", "deny") != 0 || write_file("/proc/self/uid_map", text) != 0)
            die(125, "creating the container's namespaces: [Errno %d] uid_map: %s", errno, strerror(errno));
        map_text(&c->gid_map, text, sizeof text);
        if (write_file("/proc/self/gid_map", text) != 0)
            die(125, "creating the container's namespaces: [Errno %d] gid_map: %s", errno, strerror(errno));
        return;
    }
    /* a full map: the setuid helpers must run outside the new namespace, from a child */
    int go[2], res[2];
    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(res, O_CLOEXEC) != 0)
        die(125, "creating the container's namespaces: [Errno %d] %s", errno, strerror(errno));
    pid_t me = getpid();
    pid_t mapper = fork();
    if (mapper == 0) {
        close(go[1]);
        close(res[0]);
        char c1;
        if (read(go[0], &c1, 1) == 1 && c1 == 'g') {
            char err[1024];
            run_mappers(me, c, err, sizeof err);
            write_all(res[1], err, strlen(err));
        }
        _exit(0);
    }
    close(go[0]);
    close(res[1]);
    if (unshare(CLONE_NEWUSER | flags) != 0) {
        int e = errno;
        close(go[1]);
        waitpid(mapper, NULL, 0);
        die(125, "creating the container's namespaces: [Errno %d] %s", e, strerror(e));
    }
    write_all(go[1], "g", 1);
    close(go[1]);
    char err[1024];
    size_t got = read_text(res[0], err, sizeof err);
    close(res[0]);
    waitpid(mapper, NULL, 0);
    if (got)
        die(125, "creating the container's namespaces: [Errno 1] %s", err);
}

static void __attribute__((noreturn)) sandbox(struct config *c)
{
    setsid(); /* the container's own session: no signal to the service's group reaches it */
    join_cgroups(c->nprocs);
    enter_namespaces(c);
    pid_t pid = fork();
    if (pid < 0)
        die(125, "creating the container's namespaces: [Errno %d] fork: %s", errno, strerror(errno));
    if (pid == 0) {
        /* PID 1 does not carry the service's death signal (its parent, H, exits now): a
         * discarded sandbox ends with EOF on the control socket */
        pid1(c->new_netns, c->dumpable);
    }
    char line[32];
    int n = snprintf(line, sizeof line, "P%d\n", pid);
    write_all(FD_REPORT, line, (size_t)n);
    _exit(0);
}

/* `exec`: into the container's cgroup and namespaces, then a child in its PID namespace. */
static void __attribute__((noreturn)) exec_into(struct config *c)
{
    join_cgroups(c->nprocs);
    close(FD_STATUS_W);
    close(FD_STATUS_R);
    struct msg m;
    if (recv_msg(FD_CTL, &m) != 0 || m.type != 'E')
        die(126, "joining the container: no exec plan");
    struct plan pl;
    parse_plan(&m, &pl);
    if (m.nfds < 4 + (int)pl.namespaces.n)
        die(126, "joining the container: missing descriptors");
    int root = m.fds[3];
    /* the user namespace first (rootless: it owns the others), the mount namespace last */
    for (size_t i = 0; i < pl.namespaces.n; i++) {
        if (setns(m.fds[4 + i], 0) != 0)
            die(126, "joining the container: setns %s: %s", pl.namespaces.v[i], strerror(errno));
        close(m.fds[4 + i]);
    }
    pid_t child = fork();
    if (child < 0)
        die(126, "joining the container: fork: %s", strerror(errno));
    if (child == 0) {
        /* the container's root, not the mount namespace's: the same wherever jupybox runs */
        if (fchdir(root) != 0 || chroot(".") != 0 || chdir("/") != 0)
            die(126, "joining the container: chroot: %s", strerror(errno));
        close(root);
        struct user u;
        if (resolve_user(pl.user, 126, &u) != 0)
            report_and_exit();
        add_home(&pl, &u);
        struct job j;
        if (make_job(&pl, &u, &j, 126) != 0)
            report_and_exit();
        for (int i = 0; i < 3; i++)
            j.fds[i] = m.fds[i];
        exec_command(&pl, &j, 1);
    }
    char line[32];
    int n = snprintf(line, sizeof line, "P%d\n", child);
    write_all(FD_REPORT, line, (size_t)n);
    _exit(0);
}

int main(void)
{
    /* a service killed before we even read our configuration: nothing to do for anyone */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct msg m;
    if (recv_msg(FD_CTL, &m) != 0 || m.type != 'C')
        _exit(125);
    struct config c;
    parse_config(&m, &c);
    if (c.parent && getppid() != c.parent)
        _exit(125);
    if (c.exec_mode)
        exec_into(&c);
    sandbox(&c);
}
