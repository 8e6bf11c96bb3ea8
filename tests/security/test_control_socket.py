"""No process inside any container can reach a jupybox control socket, in any network mode,
rootless or not: the service listens on a file in <store>/run (0700, never shown in a container),
and refuses any peer outside its own PID namespace (every container has its own) or of another uid.

The attack is the one that worked against the old launcher (an abstract socket, pickled messages):
find every jupybox socket in /proc/net/unix, connect, send a pickle that would run a command and a
JSON ping; the command must never run and nothing must answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jupybox.service import address

from .conftest import jb

pytestmark = [pytest.mark.root]

ATTACK = r"""
import json, os, pickle, socket, struct, sys
names = set()
try:
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8:
            names.add(parts[7])
except OSError:
    pass
targets = sorted(n for n in names if "jupybox" in n or n.endswith(".sock")) + sys.argv[1:]
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["MARK"],))
results = {}
for n in targets:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    addr = "\0" + n[1:] if n.startswith("@") else n
    try:
        s.connect(addr)
    except OSError as e:
        results[n] = "refused: " + (e.strerror or str(e))
        continue
    try:
        evil = pickle.dumps(Payload())
        s.sendall(len(evil).to_bytes(8, "little") + evil)
        ping = json.dumps({"v": 1, "op": "ping", "req": 1}).encode()
        s.sendall(struct.pack(">I", len(ping)) + ping)
        data = s.recv(65536)
        results[n] = "ANSWERED " + data[:200].decode(errors="replace") if data else "hung up"
    except OSError as e:
        results[n] = "hung up: " + (e.strerror or str(e))
print(json.dumps(results))
"""


def _service_socket(root) -> str:
    return os.path.join(str(root), "run", address.name(str(root)) + ".sock")


def _attack(root, tmp_path, *options) -> dict:
    mark = tmp_path / "PWNED"
    assert jb(root, "run", "--rm", "busybox", "true").returncode == 0  # the service is up
    sock = _service_socket(root)
    assert os.path.exists(sock)
    out = jb(root, "run", "--rm", *options, "-e", f"MARK={mark}", "host", "python3", "-c", ATTACK, sock)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert not any(r.startswith("ANSWERED") for r in results.values()), results
    assert not mark.exists()  # the pickle's command never ran, on the host or anywhere we can see
    return results


@pytest.mark.parametrize("network", ["host", "none", "bridge"])
def test_no_container_reaches_the_service(store, tmp_path, network):
    results = _attack(store, tmp_path, "--network", network)
    # the service's socket path: not even there, in the container's own mount namespace
    assert results[_service_socket(store)].startswith("refused"), results


def test_a_bind_of_the_store_shows_no_socket(store, tmp_path):
    results = _attack(store, tmp_path, "--network", "host", "-v", f"{store}:/store")
    out = jb(store, "run", "--rm", "-v", f"{store}:/store", "busybox", "ls", "-A", "/store/run")
    assert out.returncode in (0, 1) and out.stdout.strip() == "", out  # an empty tmpfs over run/
    assert all(not r.startswith("ANSWERED") for r in results.values())


def test_mounting_the_service_directory_is_refused(store):
    for src in (store / "run", _service_socket(store)):
        out = jb(store, "run", "--rm", "-v", f"{src}:/x", "busybox", "true")
        assert out.returncode == 125 and "service's directory" in out.stderr, out


def test_a_peer_in_another_pid_namespace_is_refused(store):
    """Defense in depth: a process that somehow reached the socket, in a PID namespace of its own
    (as every container is), is hung up on without an answer."""
    assert jb(store, "run", "--rm", "busybox", "true").returncode == 0
    probe = ("import json, socket, struct, sys\n"
             "s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])\n"
             "ping = json.dumps({'v': 1, 'op': 'ping', 'req': 1}).encode()\n"
             "s.sendall(struct.pack('>I', len(ping)) + ping)\n"
             "print('ANSWERED' if s.recv(100) else 'hung up')\n")
    out = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", probe, _service_socket(store)],
                         capture_output=True, text=True, timeout=60)
    # hung up on: EOF, or a reset, or (when the hang-up comes before the request is written) EPIPE
    assert out.stdout.strip() == "hung up" or any(e in out.stderr for e in ("Connection reset", "Broken pipe")), \
        (out.stdout, out.stderr)
    # and from our own namespace it answers (the test would prove nothing otherwise)
    same = subprocess.run([sys.executable, "-c", probe, _service_socket(store)], capture_output=True, text=True,
                          timeout=60)
    assert same.stdout.strip() == "ANSWERED", same.stderr
    log = open(address.log_path(str(store))).read()
    assert "refused a connection: the peer is in another PID namespace" in log


def test_rootless_containers_do_not_reach_the_users_service(tmp_path):
    from jupybox.testing import busybox_tarball, cache_dir
    from jupybox.testing.rootless import unavailable, unprivileged_user

    if unavailable():
        pytest.skip(unavailable())
    jupybox_cli = os.path.join(os.path.dirname(sys.executable), "jupybox")
    with unprivileged_user(subids=True, prefix="jbxsec") as user:
        tar = user.give(busybox_tarball(cache_dir()))
        assert user.run([jupybox_cli, "import", str(tar), "busybox"]).returncode == 0
        assert user.run([jupybox_cli, "run", "--rm", "busybox", "true"]).returncode == 0  # service up
        store = user.home / ".local/share/jupybox"
        sock = [str(p) for p in (store / "run").glob("*.sock")]
        assert sock, "the user's service has a socket"
        mark = user.home / "PWNED"
        # rootless containers use the host's network by default: /proc/net/unix shows the socket
        out = user.run([jupybox_cli, "run", "--rm", "-e", f"MARK={mark}", "host", "python3", "-c", ATTACK, *sock])
        assert out.returncode == 0, out.stderr
        results = json.loads(out.stdout.strip().splitlines()[-1])
        assert not any(r.startswith("ANSWERED") for r in results.values()), results
        assert not mark.exists()
