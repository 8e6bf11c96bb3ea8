"""A real JupyterHub, its proxy and a browser, in a network namespace of their own (tests, benchmarks).

    with Netns() as ns:
        hub = Hub(ns, workdir, store, spawner="jupybox")
        hub.start(); hub.api("POST", "/users/alice/server"); hub.wait_ready("alice"); hub.stop()

- :class:`Netns`: ``ip netns add`` with loopback up; :meth:`Netns.call` runs a function in a thread
  that joined the namespace (its sockets live there: HTTP to the hub from the test process),
  :meth:`Netns.wrap` makes a launcher script that execs a program inside it (Chromium for
  Playwright, which talks to it over a pipe).
- :func:`proxy_command`: configurable-http-proxy, installed by npm into the test cache once.
- :class:`Hub`: ``jupyterhub -f <generated config>`` in the namespace, DummyAuthenticator, a service
  token with admin scopes for :meth:`Hub.api`; stopped by its process group.

Everything is in the namespace: bridges, nftables tables and listening ports vanish with it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

CHP_VERSION = "5.3.0"
HUB_PORT, PROXY_PORT, PROXY_API_PORT = 8081, 8000, 8001


class Unavailable(RuntimeError):
    """What the hub tests need is missing (root, ip/nsenter/nft, npm, jupyterhub)."""


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nsenter", "nft", "npm"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (pip install 'jupybox[hub]')"
    return None


class Netns:
    def __init__(self, prefix: str = "jbxh"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.path = f"/run/netns/{self.name}"
        self._pool = None

    def __enter__(self) -> "Netns":
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            self.run(["ip", "link", "set", "lo", "up"], check=True)
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, initializer=self._join,
                                                               thread_name_prefix=f"netns-{self.name}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _join(self) -> None:
        from ..linux import syscalls

        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)  # this thread only: its sockets live in the namespace
        finally:
            os.close(fd)

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def prefix(self) -> list[str]:
        return ["nsenter", f"--net={self.path}"]

    def run(self, argv, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.prefix() + [str(a) for a in argv], **kw)

    def popen(self, argv, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.prefix() + [str(a) for a in argv], **kw)

    def call(self, fn, *args, **kw):
        return self._pool.submit(fn, *args, **kw).result()

    def submit(self, fn, *args, **kw) -> concurrent.futures.Future:
        return self._pool.submit(fn, *args, **kw)

    def wrap(self, program: str, directory: Path) -> str:
        """A script that execs ``program`` (with its arguments and fds) inside the namespace."""
        path = Path(directory) / f"{Path(program).name}-in-{self.name}"
        path.write_text(f'#!/bin/sh\nexec nsenter --net={self.path} {program} "$@"\n')
        path.chmod(0o755)
        return str(path)


class Here:
    """The network namespace this process is in, with :class:`Netns`'s interface (a benchmark that
    re-ran itself inside a namespace of its own)."""

    def run(self, argv, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([str(a) for a in argv], **kw)

    def popen(self, argv, **kw) -> subprocess.Popen:
        return subprocess.Popen([str(a) for a in argv], **kw)

    def call(self, fn, *args, **kw):
        return fn(*args, **kw)


def http(method: str, url: str, data=None, headers=None, timeout: float = 30) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers, not exceptions (call it in the netns)."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def proxy_command(cache: Path) -> str:
    """configurable-http-proxy's executable, npm-installed under ``cache`` on first use (a lock
    keeps two test processes from installing it at once)."""
    prefix = Path(cache) / f"configurable-http-proxy-{CHP_VERSION}"
    exe = prefix / "node_modules" / ".bin" / "configurable-http-proxy"
    if exe.exists():
        return str(exe)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / ".configurable-http-proxy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            tmp = prefix.with_name(prefix.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            proc = subprocess.run(["npm", "install", "--prefix", str(tmp), "--no-audit", "--no-fund", "--silent",
                                   f"configurable-http-proxy@{CHP_VERSION}"], capture_output=True, text=True,
                                  timeout=600)
            if proc.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise Unavailable(f"npm install configurable-http-proxy failed: {proc.stderr.strip()[-300:]}")
            os.rename(tmp, prefix)
    return str(exe)


CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.ip = {proxy_ip!r}
c.JupyterHub.slow_spawn_timeout = 120  # a POST of a server answers when it is ready
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{work}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = {spawner!r}
c.JupyterHub.services = [{{"name": "tests", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "tests", "services": ["tests"],
                            "scopes": ["admin:users", "admin:servers", "access:servers", "tokens"]}}]
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = {proxy_token!r}
c.Spawner.http_timeout = 300
c.Spawner.start_timeout = 300
c.Spawner.default_url = "/lab"
"""


def server_user_config() -> str:
    """Config lines for the server's user in the ``host`` image: the default uid 1000 when it can
    run this Python, else root (``--allow-root``): the host image shows a fresh 0700 ``/root``, so
    an interpreter under /root (pyenv as root's) is out of reach of any other uid."""
    real = os.path.realpath(sys.executable)
    parts = Path(real).parents
    if all(os.stat(p).st_mode & 0o001 for p in parts if str(p) != "/") and not real.startswith("/root/"):
        return ""
    return ('c.JupyboxSpawner.uid = 0\nc.JupyboxSpawner.gid = 0\n'
            'c.Spawner.args = ["--allow-root"]  # the interpreter is under /root: see server_user_config\n')


class Hub:
    """One JupyterHub process (and the proxy it starts) in ``ns``; state under ``workdir``."""

    def __init__(self, ns: Netns | Here, workdir: Path, proxy: str, spawner: str = "jupybox", extra_config: str = "",
                 env: dict | None = None, proxy_ip: str = "127.0.0.1",
                 ports: tuple[int, int, int] = (PROXY_PORT, PROXY_API_PORT, HUB_PORT)):
        self.ns = ns
        self.work = Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        proxy_port, proxy_api_port, hub_port = ports
        self.base = f"http://127.0.0.1:{proxy_port}"
        config = CONFIG.format(work=self.work, spawner=spawner, token=self.token, proxy=proxy,
                               proxy_token=secrets.token_hex(16), hub_port=hub_port, proxy_port=proxy_port,
                               proxy_api_port=proxy_api_port, proxy_ip=proxy_ip)
        (self.work / "jupyterhub_config.py").write_text(config + extra_config)
        self.env = dict(os.environ, **(env or {}))
        self.proc: subprocess.Popen | None = None
        self.log_path = self.work / "jupyterhub.log"

    def start(self, timeout: float = 120) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = self.ns.popen([sys.executable, "-m", "jupyterhub", "-f", self.work / "jupyterhub_config.py"],
                                  cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, _ = self.ns.call(http, "GET", f"{self.base}/hub/api/", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterHub did not start: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def api(self, method: str, path: str, data=None, timeout: float = 60) -> tuple[int, object]:
        status, body = self.ns.call(http, method, f"{self.base}/hub/api{path}", data,
                                    {"Authorization": f"token {self.token}"}, timeout)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body.decode(errors="replace")

    def get(self, path: str, timeout: float = 30) -> tuple[int, bytes]:
        """A request through the proxy with the tests' token (``path`` from the proxy's root)."""
        return self.ns.call(http, "GET", f"{self.base}{path}", None, {"Authorization": f"token {self.token}"},
                            timeout)

    def spawn(self, user: str, options: dict | None = None) -> int:
        self.api("POST", "/users", {"usernames": [user]})
        status, _ = self.api("POST", f"/users/{user}/server", options or {})
        return status

    def server(self, user: str) -> dict | None:
        status, model = self.api("GET", f"/users/{user}")
        return (model.get("servers") or {}).get("") if status == 200 else None

    def wait_ready(self, user: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(user)
            if server and server.get("ready"):
                return server
            if server is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{user}'s server is not ready ({server}): {self.log_tail()}")
            time.sleep(0.2)

    def stop_server(self, user: str, timeout: float = 120) -> None:
        self.api("DELETE", f"/users/{user}/server")
        deadline = time.monotonic() + timeout
        while self.server(user) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{user}'s server did not stop: {self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to the hub (it stops its proxy; servers stay: cleanup_servers is off)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._kill_proxy()
        self.proc = None

    def _kill_proxy(self) -> None:
        """The proxy is in its own session: a hub killed before it could stop it leaves its pid file."""
        pidfile = self.work / "jupyterhub-proxy.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(OSError):
            if b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(OSError):
            pidfile.unlink()
