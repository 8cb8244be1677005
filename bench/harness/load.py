"""The load tool: wrk (-t1 -c8) with bench/wrk/tokens.lua, parsed from its BENCH line."""

import os
import re
import shutil
import subprocess

THREADS = 1
CONNECTIONS = 8
PATH = "/bench/item?id=42"


def ensure_wrk():
    """Path of wrk; installs Debian's package if it is missing."""
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found: apt-get install -y wrk", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, timeout=300)
    path = shutil.which("wrk")
    if not path:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, timeout=300)
        path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk could not be installed")
    return path


class WrkResult:
    """What one wrk run measured."""

    def __init__(self, fields, raw):
        self.raw = raw
        self.requests = int(fields["requests"])
        self.duration_s = int(fields["duration_us"]) / 1e6
        self.p50_ms = int(fields["p50_us"]) / 1000
        self.p99_ms = int(fields["p99_us"]) / 1000
        self.mean_ms = int(fields["mean_us"]) / 1000
        self.wraps = int(fields["wraps"])
        self.socket_errors = sum(int(fields[k]) for k in
                                 ("err_connect", "err_read", "err_write", "err_timeout"))
        self.statuses = {}
        for part in filter(None, fields["statuses"].split(",")):
            code, count = part.split(":")
            self.statuses[int(code)] = int(count)
        self.non_2xx = sum(c for s, c in self.statuses.items() if not 200 <= s < 300)

    @property
    def rps(self):
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s else 0.0


def run_wrk(wrk, lua, url, seconds, token_file, start_index=0, latency=True, vary=False):
    """Runs wrk for `seconds` against `url` with `token_file` (with `vary`, a new query on every
    request); returns a WrkResult."""
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s"]
    if latency:
        cmd.append("--latency")
    cmd += ["-s", lua, url + PATH, "--", token_file, str(start_index)] + (["vary"] if vary else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    out = proc.stdout + proc.stderr
    m = re.search(r"^BENCH (.*)$", out, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{out[-2000:]}")
    fields = dict(kv.split("=", 1) for kv in m.group(1).split())
    return WrkResult(fields, out)
