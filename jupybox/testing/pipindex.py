"""A PEP 503 package index served from a directory on 127.0.0.1, for builds that must not reach PyPI.

    files = pip_wheels(cache_dir(), "env-index", ["tabulate==0.9.0", "ipykernel==6.29.5"])  # once, from PyPI
    with PackageIndex(files) as index:
        ... pip install --index-url {index.url} --trusted-host 127.0.0.1 ...
        index.downloads  # {"tabulate-0.9.0-py3-none-any.whl": 1}: package files served, by name

Pages are cacheable (pip keeps what it downloads in its HTTP cache from TLS or trusted hosts); a
file's link carries its sha256, as PyPI's do, so pip records the hash in ``--report``. Served from a
thread of this process: run it in the network namespace of the build that uses it.
"""

from __future__ import annotations

import collections
import hashlib
import html
import http.server
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path


#: the test cache's package indexes of tests/env and benchmarks/bench_env.py (directory: requirements)
ENV_INDEX = {"env-index": ["ipykernel==6.29.5", "tabulate==0.9.0", "six==1.16.0"],
             "env-index-newer": ["six==1.17.0"]}


def project_of(filename: str) -> str:
    """PEP 503 normalized project name of a wheel or sdist file name."""
    name = filename.split("-")[0]
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def pip_wheels(cache: Path, name: str, requirements: list[str], python: str = "3.11",
               platform: str = "manylinux2014_x86_64") -> Path:
    """``cache/name``: wheels of ``requirements`` (and their dependencies) for CPython ``python``,
    downloaded once from PyPI with pip (marked done by ``.done``)."""
    dest = Path(cache) / name
    if (dest / ".done").exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", "--platform", platform, "--python-version", python,
                    "--implementation", "cp", "-d", str(dest), *requirements], check=True)
    (dest / ".done").write_text("\n".join(requirements) + "\n")
    return dest


class PackageIndex:
    """The files of ``dirs`` (later directories add files, hide none) as a simple index."""

    def __init__(self, *dirs: Path):
        self.dirs = [Path(d) for d in dirs]
        self.downloads: collections.Counter = collections.Counter()
        self._digests: dict[Path, str] = {}
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=86400")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = [p for p in urllib.parse.urlsplit(self.path).path.split("/") if p]
                files = index.files()
                if parts[:1] == ["simple"] and len(parts) == 2:
                    links = [f'<a href="/files/{html.escape(n)}#sha256={index.digest(p)}">{html.escape(n)}</a>'
                             for n, p in sorted(files.items()) if project_of(n) == parts[1]]
                    if links:
                        return self._send(("<html><body>" + "<br>".join(links) + "</body></html>").encode(),
                                          "text/html")
                elif parts[:1] == ["files"] and len(parts) == 2 and parts[1] in files:
                    index.downloads[parts[1]] += 1
                    return self._send(files[parts[1]].read_bytes(), "application/octet-stream")
                self.send_error(404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/simple/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="jupybox-pip-index", daemon=True)

    def files(self) -> dict[str, Path]:
        out = {}
        for d in self.dirs:
            for f in d.iterdir():
                if not f.name.startswith(".") and f.is_file():
                    out.setdefault(f.name, f)
        return out

    def digest(self, path: Path) -> str:
        if path not in self._digests:
            self._digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._digests[path]

    def __enter__(self) -> "PackageIndex":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
