#!/usr/bin/env bash
# The README's first commands on a fresh Debian 12, as most users have it (issue 26): Debian's own
# Python 3.11, no git, no make, nothing installed by hand.
#
#   bash scripts/fresh-debian.sh [--test] [--keep] [--dir DIR] [--ca-file FILE] [--] [TESTS...]
#
# 1. `mmdebstrap --variant=minbase bookworm DIR`, with bookworm-updates and security, as an installer
#    leaves it;
# 2. enters DIR as its `/`: a mount namespace of its own whose mounts are slaves of the machine's
#    (nothing mounted there reaches the machine), DIR bound onto itself, /proc /sys /dev bound
#    (slaves too), a fresh tmpfs on /run, pivot_root, the old root detached, the environment
#    cleared;
# 3. there, what the README says: `apt-get install -y git make && git clone ... && cd jupybox`
#    (the clone is of this checkout's HEAD: what is committed), `make demo`, and with --test
#    `make test` (TESTS... narrows it: `--test -- tests/image tests/cli`);
# 4. checks that `make demo` left no process behind (no dockerd, containerd or registry started by
#    the install, nor a service of the demo's) and enabled no service (no new systemd link, no
#    policy-rc.d left behind);
# 5. prints the time of each step and the disk DIR uses, ends every process still in DIR's
#    namespace (naming it: there should be none), so that nothing stays mounted, and removes DIR
#    unless --keep.
#
# Needs root, mmdebstrap and the network (a few hundred MB from the Debian mirror and PyPI; with
# --test ~1 GB more of test fixtures). Where the network's TLS is intercepted by a proxy with its
# own certificate authority, --ca-file (default: $PIP_CERT, if set) is copied in and named by
# PIP_CERT, SSL_CERT_FILE and NODE_EXTRA_CA_CERTS, the only variables passed in besides
# http_proxy/https_proxy/no_proxy.
set -euo pipefail

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=/var/tmp/jupybox-fresh-debian
SUITE=bookworm
MIRROR=http://deb.debian.org
CA_FILE=${PIP_CERT:-}
RUN_TESTS=0
KEEP=0
TESTS=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --test) RUN_TESTS=1 ;;
        --keep) KEEP=1 ;;
        --dir) DIR=$2; shift ;;
        --ca-file) CA_FILE=$2; shift ;;
        --) shift; TESTS="$*"; break ;;
        -h|--help) usage ;;
        *) echo "fresh-debian: unknown argument $1" >&2; usage ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "fresh-debian: needs root" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "fresh-debian: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
[ -z "$CA_FILE" ] || [ -f "$CA_FILE" ] || { echo "fresh-debian: no such file: $CA_FILE" >&2; exit 2; }
if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    echo "fresh-debian: $DIR is not empty (a run before this one kept it: remove it first)" >&2
    exit 2
fi

# --- inside: what runs in the fresh Debian, as root, environment cleared -------------------------
# shellcheck disable=SC2016 # expanded inside
INSIDE='
set -euo pipefail
step() { echo "fresh-debian: $1: $(( $(date +%s) - t0 )) s" >>/root/fresh-debian.times; t0=$(date +%s); }
cd /root
t0=$(date +%s)
# the README: one line for what a minimal Debian lacks and the code, then its two commands
apt-get update -q && apt-get install -y -q git make && git -c advice.detachedHead=false clone -q /mnt/checkout.bundle jupybox && cd jupybox
step "git, make and the clone"
make demo
step "make demo (the Debian packages, the venv, the demo)"
# nothing was started (no process but this shell in the namespace: no dockerd, containerd,
# registry, nor a service of the demo) and nothing enabled (no new systemd link)
here=$(readlink /proc/self/ns/mnt)
for pid in $(ls /proc | grep -E "^[0-9]+$"); do
    [ "$pid" != $$ ] && [ "$(readlink /proc/$pid/ns/mnt 2>/dev/null)" = "$here" ] || continue
    [ "$(awk "/^PPid:/{print \$2}" /proc/$pid/status 2>/dev/null)" != $$ ] || continue  # a $(...) of this shell
    echo "fresh-debian: left running after make demo: $(tr "\0" " " </proc/$pid/cmdline)" >&2
    exit 1
done
find /etc/systemd/system -mindepth 2 -maxdepth 2 -type l \( -path "*.wants/*" -o -path "*.requires/*" \) -printf "%P\n" |
    sort | comm -13 /root/.fresh-debian-links - >/root/.fresh-debian-enabled
if [ -s /root/.fresh-debian-enabled ]; then
    echo "fresh-debian: the install enabled: $(cat /root/.fresh-debian-enabled)" >&2
    exit 1
fi
[ ! -e /usr/sbin/policy-rc.d ] || { echo "fresh-debian: /usr/sbin/policy-rc.d was left behind" >&2; exit 1; }
{ ls /sys/class/net; nft list tables; } | grep -E "^jbx-|jupybox_" | sort | comm -13 /root/.fresh-debian-net - >/root/.fresh-debian-new
if [ -s /root/.fresh-debian-new ]; then
    echo "fresh-debian: make demo left in the network namespace: $(cat /root/.fresh-debian-new)" >&2
    exit 1
fi
if [ "$RUN_TESTS" = 1 ]; then
    rc=0
    if [ -n "$TESTS" ]; then make test TESTS="$TESTS" || rc=$?; else make test || rc=$?; fi
    step "make test${TESTS:+ ($TESTS)} (exit $rc)"
    exit "$rc"
fi
'

# --- the namespace: DIR becomes / -------------------------------------------------------------
enter() {
    mount --bind "$DIR" "$DIR"
    for fs in proc sys dev; do
        mount --rbind "/$fs" "$DIR/$fs"
        mount --make-rslave "$DIR/$fs"
    done
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$DIR/run"
    mkdir -p "$DIR/mnt" "$DIR/.old-root"
    # the checkout's HEAD as a bundle: what is committed, from a worktree too (whose .git is a
    # file naming a directory the fresh Debian cannot see)
    git -C "$CHECKOUT" bundle create -q "$DIR/mnt/checkout.bundle" HEAD
    readlink /proc/self/ns/mnt >"$DIR/root/.fresh-debian-ns"
    cd "$DIR"
    pivot_root . .old-root
    cd /
    umount -l /.old-root
    rmdir /.old-root
    local env=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb
               DEBIAN_FRONTEND=noninteractive RUN_TESTS="$RUN_TESTS" TESTS="$TESTS")
    for v in http_proxy https_proxy no_proxy; do
        [ -z "${!v:-}" ] || env+=("$v=${!v}")
    done
    if [ -n "$CA_FILE" ]; then
        env+=(PIP_CERT=/etc/fresh-debian-ca.pem SSL_CERT_FILE=/etc/fresh-debian-ca.pem
              NODE_EXTRA_CA_CERTS=/etc/fresh-debian-ca.pem)
    fi
    exec env -i "${env[@]}" /bin/bash -c "$INSIDE"
}

t_start=$(date +%s)
mkdir -p "$DIR"
echo "fresh-debian: mmdebstrap --variant=minbase $SUITE $DIR"
mmdebstrap --quiet --variant=minbase "$SUITE" "$DIR" \
    "deb $MIRROR/debian $SUITE main" "deb $MIRROR/debian $SUITE-updates main" \
    "deb $MIRROR/debian-security $SUITE-security main"
echo "fresh-debian: mmdebstrap: $(( $(date +%s) - t_start )) s" >"$DIR/root/fresh-debian.times"
[ -z "$CA_FILE" ] || cp "$CA_FILE" "$DIR/etc/fresh-debian-ca.pem"
find "$DIR/etc/systemd/system" -mindepth 2 -maxdepth 2 -type l \( -path '*.wants/*' -o -path '*.requires/*' \) \
    -printf '%P\n' 2>/dev/null | sort >"$DIR/root/.fresh-debian-links"
# the network objects of the machine's namespace (which the fresh Debian shares): the demo's store
# must take its bridge and nftables table with it
{ ls /sys/class/net; nft list tables 2>/dev/null || true; } | grep -E "^jbx-|jupybox_" | sort >"$DIR/root/.fresh-debian-net"

export DIR CHECKOUT CA_FILE RUN_TESTS TESTS INSIDE
export -f enter
status=0
unshare --mount --propagation slave -- bash -c enter || status=$?

# --- afterwards: nothing of it left running or mounted ------------------------------------------
ns=$(cat "$DIR/root/.fresh-debian-ns" 2>/dev/null || true)
if [ -n "$ns" ]; then
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        if [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ]; then
            echo "fresh-debian: left running in the fresh Debian, killed: $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
            kill -9 "$pid" 2>/dev/null || true
            [ "$status" != 0 ] || status=1
        fi
    done
fi
if awk -v d="$DIR" '$5 == d || index($5, d "/") == 1' /proc/self/mountinfo | grep -q .; then
    echo "fresh-debian: mounts under $DIR in the machine's namespace: not removing it" >&2
    KEEP=1 status=1
fi
cat "$DIR/root/fresh-debian.times"
echo "fresh-debian: total: $(( $(date +%s) - t_start )) s"
echo "fresh-debian: disk used: $(du -sh --one-file-system "$DIR" | cut -f1), of which:"
(cd "$DIR" && du -sh --one-file-system root/jupybox/.venv var/cache/apt root/.cache/jupybox-tests 2>/dev/null || true)
if [ "$KEEP" = 1 ]; then
    echo "fresh-debian: kept $DIR"
else
    rm -rf --one-file-system "$DIR"
fi
exit "$status"
