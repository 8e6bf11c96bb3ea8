#!/bin/busybox sh
# PID 1 of the v2 test guest (tests/v2guest): a Debian kernel booted under qemu with a pure
# cgroup2 hierarchy. Two stages in one file:
#
#   stage 1 (no argument; the initramfs's /init): load the modules the initramfs carries, mount
#     the host's directories (9p, read-only; "overlay" ones get a writable layer that stays in the
#     guest), the scratch disk (ext4: /tmp, /var, /home) and the results share, then switch_root
#     (jupybox's containers pivot_root, which the initramfs's rootfs does not allow).
#   stage 2 ("stage2"; PID 1 in the new root): mount cgroup2 at /sys/fs/cgroup as systemd does,
#     run the job (tests/v2guest/guest_run.py) and power off; qemu exits (-no-reboot).
#
# What to mount comes from /out/plan.sh, written by the host (tests/v2guest/vm.py):
#   SHARES="TAG:GUEST_PATH:ro|overlay ..."  LINKS="PATH:TARGET ..."  SCRATCH="PATH:MODE ..."
#   JOB="argv of the job"  and exported environment variables for it.
set -u
BB=/bin/busybox
NINEP="trans=virtio,version=9p2000.L,msize=512000,cache=loose"

say() { echo "v2guest: $*" > /dev/console; }
die() { say "FATAL: $*"; echo "$*" > /out/fatal 2>/dev/null; $BB poweroff -f; }

stage1() {
    $BB --install -s /bin
    export PATH=/bin
    mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev || die "proc/sys/dev"
    while read -r m; do
        insmod "/lib/modules/$m.ko" || say "insmod $m failed"
    done < /modules.order
    mkdir -p /out && mount -t 9p -o "$NINEP" jbxout /out || die "no results share (jbxout)"
    . /out/plan.sh || die "no /out/plan.sh"
    mount -t tmpfs -o mode=755 root /newroot || die "tmpfs root"
    mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/out /newroot/scratch /lower
    for link in $LINKS; do
        ln -s "${link#*:}" "/newroot${link%%:*}"
    done
    mount -t ext4 /dev/vda /newroot/scratch || die "scratch disk"
    for share in $SHARES; do
        tag=${share%%:*}; rest=${share#*:}; path=${rest%%:*}; how=${rest#*:}
        mkdir -p "/newroot$path"
        if [ "$how" = overlay ]; then
            mkdir -p "/lower/$tag" "/newroot/scratch/.overlay/$tag/upper" "/newroot/scratch/.overlay/$tag/work"
            mount -t 9p -o "ro,$NINEP" "$tag" "/lower/$tag" || die "9p $tag"
            mount -t overlay -o "lowerdir=/lower/$tag,upperdir=/newroot/scratch/.overlay/$tag/upper,workdir=/newroot/scratch/.overlay/$tag/work" \
                "overlay-$tag" "/newroot$path" || die "overlay $tag"
        else
            mount -t 9p -o "ro,$NINEP" "$tag" "/newroot$path" || die "9p $tag"
        fi
    done
    for dir in $SCRATCH; do
        path=${dir%%:*}
        mkdir -p "/newroot/scratch$path" "/newroot$path"
        chmod "${dir#*:}" "/newroot/scratch$path"
        mount --bind "/newroot/scratch$path" "/newroot$path" || die "scratch $path"
    done
    mount -t tmpfs -o mode=755 run /newroot/run
    mkdir -p /newroot/run/v2guest
    cp $BB /init /newroot/run/v2guest/
    mount --move /out /newroot/out
    mount --move /proc /newroot/proc && mount --move /sys /newroot/sys && mount --move /dev /newroot/dev
    exec switch_root /newroot /run/v2guest/busybox sh /run/v2guest/init stage2
}

stage2() {
    BB=/run/v2guest/busybox
    $BB mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup || die "cgroup2"
    $BB mkdir -p /dev/pts /dev/shm
    $BB mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
    $BB mount -t tmpfs -o mode=1777 shm /dev/shm
    # no udev here: /dev/fuse as Debian's udev rule leaves it (rootless fuse-overlayfs needs it)
    [ -e /dev/fuse ] && $BB chmod 0666 /dev/fuse
    $BB hostname v2guest
    $BB ip link set lo up
    . /out/plan.sh
    cd /
    # the job's output goes to the console too: a hang is then visible in the host's log
    $JOB > /dev/console 2>&1
    echo $? > /out/job.rc
    $BB sync
    $BB poweroff -f
}

if [ "${1:-}" = stage2 ]; then stage2; else stage1; fi
