"""What a container's root filesystem is made of, beyond its image: Docker's masked and read-only
paths. The C init (jupybox/linux/init.c, ``setup_rootfs``) assembles it inside the container's own
mount namespace, in runc's order (``rootfs_linux.go``):

 1. make ``/`` recursively private, so nothing propagates back to the host;
 2. overlayfs: the image layers as lower dirs, the container's write layer as upper dir (the
    layers named relative to the store: a store path with ',' or ':' is no option separator);
 3. /proc, /dev (a small tmpfs with the usual nodes, devpts newinstance, shm, mqueue), /sys
    read-only, the container's own cgroup read-only under /sys/fs/cgroup; an image whose /proc,
    /dev or /sys is a symlink or a file is refused (``/dev -> /proc`` would hide /proc);
 4. binds: the host image's directories, volumes, /etc/hosts, /etc/hostname, /etc/resolv.conf,
    each destination resolved inside the root (symlinks followed relative to it, never into /proc);
 5. the masked and read-only paths below (not for --privileged);
 6. pivot_root(".", ".") and a lazy unmount of the old root.

Every mount lives only in the container's mount namespace: when its last process exits, the kernel
drops them all, so a kill -9 of jupybox at any moment cannot leave a stray mount on the host.
"""

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
