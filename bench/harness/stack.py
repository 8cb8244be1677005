"""The fixed parts every row shares: the origin, redis-server and the Upstash REST server.

Binaries are looked up, never built here: `TEST_ORIGIN_BIN` / `UPSTASH_SERVER_BIN`, else
`$CARGO_TARGET_DIR/{release,debug}/<name>`, else `<repo>/target/{release,debug}/<name>`.
A missing origin binary falls back to bench/origin/origin.mjs (Node); a missing Upstash
server leaves the Redis rows unmeasurable (they fail with a message, nothing is faked).
"""

import http.client
import json
import os
import shutil
import socket
import time
import urllib.parse

from . import procs


def find_binary(name, env_var, repo):
    """Path of a host binary of the project, or None. Release builds are preferred."""
    explicit = os.environ.get(env_var)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    roots = []
    if os.environ.get("CARGO_TARGET_DIR"):
        roots.append(os.environ["CARGO_TARGET_DIR"])
    roots.append(os.path.join(repo, "target"))
    for root in roots:
        for profile in ("release", "debug"):
            path = os.path.join(root, profile, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


def http_request(url, method="GET", body=None, headers=None, timeout=5.0):
    """One HTTP request to 127.0.0.1; returns (status, body bytes). Reads by Content-Length."""
    u = urllib.parse.urlsplit(url)
    if u.hostname != "127.0.0.1":
        raise ValueError(f"refusing non-loopback URL {url}")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Origin:
    """The origin server: the project's test-origin binary, else the Node fallback."""

    def __init__(self, repo, bench_dir, out_dir, prefer_node=False):
        binary = None if prefer_node else find_binary("test-origin", "TEST_ORIGIN_BIN", repo)
        if binary:
            cmd = [binary, "--listen", "127.0.0.1:0"]
            profile = " (DEBUG build: prefer cargo build --release)" if "/debug/" in binary else ""
            self.kind = f"test-origin ({binary}){profile}"
        else:
            node = shutil.which("node")
            if not node:
                raise RuntimeError("no test-origin binary and no node for the fallback origin")
            cmd = [node, os.path.join(bench_dir, "origin", "origin.mjs"), "0"]
            self.kind = "bench/origin/origin.mjs (Node fallback; test-origin not built)"
        self.proc = procs.start(cmd, os.path.join(out_dir, "origin.log"))
        self.url = procs.wait_for_listening(self.proc, timeout=15)
        status, _ = http_request(self.url + "/ready")
        if status >= 500:
            raise RuntimeError(f"origin answered {status}")


class Redis:
    """A throwaway redis-server on a free port: no persistence, loopback only."""

    def __init__(self, out_dir):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise RuntimeError("redis-server not found (apt-get install -y redis-server)")
        self.port = procs.free_port()
        self.proc = procs.start(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
            os.path.join(out_dir, "redis.log"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{procs.log_tail(self.proc)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        self.url = f"redis://127.0.0.1:{self.port}"
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server not answering:\n{procs.log_tail(self.proc)}")


class Upstash:
    """The project's upstash-rest-server in front of `redis`, with the /__stats endpoint on."""

    def __init__(self, binary, redis, out_dir):
        self.binary = binary
        self.token = "bench-" + os.urandom(12).hex()
        env = dict(os.environ, UPSTASH_REST_TOKEN=self.token)
        self.proc = procs.start(
            [binary, "--listen", "127.0.0.1:0", "--redis-url", redis.url, "--admin"],
            os.path.join(out_dir, "upstash.log"), env=env,
        )
        self.url = procs.wait_for_listening(self.proc, timeout=15)
        self.stats()  # fails early if /__stats is missing

    def _auth(self):
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def stats(self):
        """(requests, commands) served so far, from GET /__stats."""
        status, body = http_request(self.url + "/__stats", headers=self._auth())
        if status != 200:
            raise RuntimeError(f"GET /__stats answered {status}: {body[:200]!r}")
        data = json.loads(body)
        return int(data["requests"]), int(data["commands"])

    def command(self, *args):
        """Runs one Redis command through the REST protocol; returns the result."""
        status, body = http_request(self.url + "/", method="POST",
                                    body=json.dumps([str(a) for a in args]), headers=self._auth())
        if status != 200:
            raise RuntimeError(f"Upstash {args[0]} answered {status}: {body[:200]!r}")
        return json.loads(body).get("result")
