#!/usr/bin/env bash
# apt-get install, starting no service and enabling none: what `make deps` installs with.
#
#   bash scripts/apt-install.sh PACKAGE...      (as root)
#
# Among jupybox's Debian packages are the tools it is tested and measured against: docker.io
# (with containerd), docker-registry, podman. Their packages start daemons at once on a machine
# running systemd, and enable them at boot everywhere (dockerd, containerd, a registry on port
# 5000, podman's socket and timers). The tests and benchmarks start private ones when they need
# them (jupybox.testing.dockerd, jupybox.testing.registry), so here none is started or enabled:
#
# - while apt runs, a policy-rc.d that answers 101 (action forbidden) to invoke-rc.d and
#   deb-systemd-invoke, as in Docker's images (one already there is kept and used as it is);
# - afterwards, what the install enabled is disabled again: systemd units that have a new link in
#   /etc/systemd/system/*.wants or *.requires (`systemctl disable`, which Debian's upgrades respect;
#   the links removed where there is no systemctl), and System V scripts with a new start link in
#   /etc/rc[2-5].d (`update-rc.d NAME disable`). What was enabled before is left as it was.
#
# To run the system's own dockerd afterwards: `systemctl enable --now docker`.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive

POLICY=/usr/sbin/policy-rc.d

# "systemd UNIT" and "sysv NAME" for what is enabled now, sorted
enabled() {
    if [ -d /etc/systemd/system ]; then
        find /etc/systemd/system -mindepth 2 -maxdepth 2 -type l \( -path '*.wants/*' -o -path '*.requires/*' \) \
            -printf 'systemd %f\n'
    fi
    for d in /etc/rc2.d /etc/rc3.d /etc/rc4.d /etc/rc5.d; do
        [ -d "$d" ] && find "$d" -maxdepth 1 -name 'S*' -printf '%f\n' | sed 's/^S[0-9]*/sysv /'
    done
    true
}

before=$(enabled | sort -u)
made_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# made by jupybox scripts/apt-install.sh for the length of an install\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

# another apt (an unattended upgrade at boot) may hold dpkg's lock: wait for it, not fail in 3 s
apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@"

comm -13 <(printf '%s\n' "$before") <(enabled | sort -u) | while read -r kind name; do
    case $kind in
        systemd)
            echo "apt-install: left disabled: $name"
            if command -v systemctl >/dev/null; then
                systemctl disable --quiet "$name" 2>/dev/null || true
            fi
            # without systemctl (or for a link it did not remove): the links themselves
            find /etc/systemd/system -mindepth 2 -maxdepth 2 -type l -name "$name" \
                \( -path '*.wants/*' -o -path '*.requires/*' \) -delete
            ;;
        sysv)
            if ls /etc/rc[2-5].d/S[0-9][0-9]"$name" >/dev/null 2>&1; then
                update-rc.d "$name" disable >/dev/null 2>&1 || true
            fi
            ;;
    esac
done
