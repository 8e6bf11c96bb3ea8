#!/usr/bin/env bash
# A two-minute tour of the jupybox CLI on the built-in `host` image (docker semantics).
# Run as root: `make demo` (puts .venv/bin first on PATH), or `bash scripts/demo.sh`.
set -uo pipefail

JUPYBOX=${JUPYBOX:-jupybox}
bold() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { bold "$*"; "$@"; }

if [ "$(id -u)" != 0 ]; then
    echo "the demo needs root (namespaces, mounts, cgroups)" >&2
    exit 2
fi
# a store of its own: the demo never touches another one (/var/lib/jupybox, a user's), and
# `system reset` removes what it made on this machine (containers, service, bridge, nftables table)
WORK=$(mktemp -d /tmp/jupybox-demo-XXXXXX)
export JUPYBOX_ROOT="$WORK/store"
cleanup() { "$JUPYBOX" system reset -f >/dev/null 2>&1; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== 1. A memory limit: allocate 200 MB in a container limited to 64 MiB"
bold "$JUPYBOX run --rm -m 64m host python3 -c 'b = b\"x\" * (200 << 20)'"
"$JUPYBOX" run --rm -m 64m host python3 -c 'b = b"x" * (200 << 20); print("allocated", len(b) >> 20, "MiB")'
rc=$?
echo "exit code: $rc"
if [ "$rc" = 137 ]; then
    echo "-> 137 = 128 + SIGKILL: the kernel's OOM killer stopped it at the 64 MiB limit"
else
    echo "-> expected 137 (OOM-killed)" >&2
    status=1
fi

echo
echo "== 2. A detached container with 256 MiB and half a CPU, busy for 3 s"
busy='import time; t = time.time() + 3; exec("while time.time() < t: pass")'
bold "$JUPYBOX run -d --name demo -m 256m --cpus 0.5 host python3 -c '$busy'"
"$JUPYBOX" run -d --name demo -m 256m --cpus 0.5 host python3 -c "$busy" || status=1
sleep 1
run "$JUPYBOX" stats --no-stream demo || status=1
run "$JUPYBOX" inspect demo || status=1
run "$JUPYBOX" rm -f demo || status=1

echo
if [ "${status:-0}" = 0 ]; then echo "demo: all steps behaved as expected"; else echo "demo: some steps failed" >&2; fi
exit "${status:-0}"
