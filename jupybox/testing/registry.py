"""A real OCI distribution registry on loopback: Debian's ``docker-registry`` (distribution 2.8).

    with Registry() as reg:                      # http://127.0.0.1:PORT, no auth
        ...  reg.url, reg.host ("127.0.0.1:PORT")
    with Registry(auth=("user", "pass")) as reg:  # htpasswd (bcrypt cost 5) Basic auth
        reg.get("/v2/")  -> (401, headers, body)

It listens only on 127.0.0.1, lives in a private temp dir, and is stopped (and
the dir removed) on exit.
"""

from __future__ import annotations

import base64
import email.message
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BINARY = "docker-registry"


def registry_available(binary: str = BINARY) -> bool:
    return shutil.which(binary) is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A loopback registry must never be reached through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Registry:
    """Start ``docker-registry serve CONFIG`` on 127.0.0.1:<free port>; a context manager."""

    def __init__(
        self,
        auth: tuple[str, str] | None = None,
        *,
        binary: str = BINARY,
        workdir: str | os.PathLike | None = None,
        startup_timeout: float = 15.0,
        realm: str = "jupybox-test",
    ):
        self.auth = auth
        self.binary = binary
        self.realm = realm
        self.startup_timeout = startup_timeout
        self._given_workdir = Path(workdir) if workdir else None
        self.workdir: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    # -- addresses -------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (what goes into an image reference)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "storage"

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> "Registry":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_config(self) -> Path:
        assert self.workdir is not None
        config: dict = {
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "jupybox-test-secret"},
        }
        if self.auth:
            user, password = self.auth
            htpasswd = self.workdir / "htpasswd"
            # bcrypt cost 5: cost 10 makes every authenticated request ~88 ms.
            out = subprocess.run(
                ["htpasswd", "-Bbn", "-C", "5", user, password], capture_output=True, text=True, check=True
            )
            htpasswd.write_text(out.stdout.strip() + "\n")
            config["auth"] = {"htpasswd": {"realm": self.realm, "path": str(htpasswd)}}
        path = self.workdir / "config.yml"
        path.write_text(json.dumps(config, indent=1))  # JSON is valid YAML
        return path

    def start(self) -> "Registry":
        if self.proc is not None:
            return self
        if not registry_available(self.binary):
            raise FileNotFoundError(f"{self.binary} not found: apt-get install docker-registry")
        if self._given_workdir:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self.workdir = self._given_workdir
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="jbx-registry-"))
        self.storage.mkdir(exist_ok=True)
        self.log_path = self.workdir / "registry.log"
        last_error = ""
        for _attempt in range(5):  # the free port may be taken between bind() and the registry's listen()
            self.port = _free_port()
            config = self._write_config()
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [self.binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            finally:
                log.close()
            if self._wait_ready():
                return self
            last_error = self.log_tail()
            self._kill()
            if "address already in use" not in last_error and "bind" not in last_error:
                break
        self._cleanup_dir()
        raise RuntimeError(f"docker-registry did not start:\n{last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                status, headers, _ = self.get("/v2/", auth=False, timeout=0.5)
                # the port may have been taken by another server between _free_port() and listen():
                # only our registry (still alive) counts
                if (
                    status in (200, 401)
                    and headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
                    and self.proc.poll() is None
                ):
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.01)
        return False

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def _cleanup_dir(self) -> None:
        if self.workdir is not None and self._given_workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self) -> None:
        self._kill()
        self._cleanup_dir()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:] if self.log_path else ""
        except OSError:
            return ""

    # -- a tiny client, enough for fixtures and smoke tests --------------------
    def get(
        self, path: str, *, auth: bool = True, method: str = "GET", headers: dict | None = None, timeout: float = 10
    ) -> tuple[int, "email.message.Message", bytes]:
        """``(status, headers, body)`` of a request to this registry; headers look up case-insensitively."""
        req = urllib.request.Request(self.url + path, method=method, headers=dict(headers or {}))
        if auth and self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def __repr__(self) -> str:
        state = "running" if self.proc and self.proc.poll() is None else "stopped"
        return f"<Registry {self.url if self.port else '-'} auth={bool(self.auth)} {state}>"
