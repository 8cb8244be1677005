"""One worker under raw `workerd serve` (never wrangler dev: its Node proxy is the bottleneck).

A row's config is a capnp file written next to the worker's modules (embed paths are relative
to the config file): ES module `index.js`, plus `index_bg.wasm` for the Rust worker; every var a
text binding; `globalOutbound` a network service that allows local addresses, so the worker can
reach the origin and the Upstash server on 127.0.0.1.
"""

import http.client
import os
import time

from . import procs, stack

COMPATIBILITY_DATE = "2025-09-01"


def capnp_text(value):
    """A capnp text literal."""
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def write_config(path, port, modules, bindings, v8_flags=()):
    """Writes a workerd config serving `modules` [(name, kind, file)] on 127.0.0.1:`port`, with
    V8 command-line `v8_flags` if any."""
    mods = ",\n    ".join(f"(name = {capnp_text(n)}, {kind} = embed {capnp_text(f)})"
                          for n, kind, f in modules)
    binds = ",\n    ".join(f"(name = {capnp_text(k)}, text = {capnp_text(v)})"
                           for k, v in sorted(bindings.items()))
    flags = f"v8Flags = [{', '.join(capnp_text(f) for f in v8_flags)}],\n  " if v8_flags else ""
    text = f"""using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  {flags}services = [(name = "main", worker = .w),
              (name = "net", network = (allow = ["public", "private", "local"]))],
  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "main")]
);
const w :Workerd.Worker = (
  modules = [
    {mods}
  ],
  compatibilityDate = "{COMPATIBILITY_DATE}",
  globalOutbound = "net",
  bindings = [
    {binds}
  ]
);
"""
    with open(path, "w") as f:
        f.write(text)


class Workerd:
    """A running `workerd serve` for one row; `url` is where it listens."""

    def __init__(self, binary, config_path, log_path, ready_timeout=30.0, inspector_port=None):
        """With `inspector_port`, workerd also serves its DevTools inspector there (memory
        pass only: an inspector makes the worker slower, so CPU rows never have one)."""
        self.port = None
        with open(config_path) as f:
            for line in f:
                if "address = \"127.0.0.1:" in line:
                    self.port = int(line.split("127.0.0.1:")[1].split('"')[0])
        self.url = f"http://127.0.0.1:{self.port}"
        started = time.monotonic()
        cmd = [binary, "serve", os.path.basename(config_path)]
        if inspector_port:
            cmd.append(f"--inspector-addr=127.0.0.1:{inspector_port}")
        self.proc = procs.start(cmd, log_path, cwd=os.path.dirname(config_path))
        self.startup_seconds = self._wait_ready(started, ready_timeout)

    def _wait_ready(self, started, timeout):
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"workerd exited with {self.proc.returncode}:\n"
                                   f"{procs.log_tail(self.proc)}")
            try:
                stack.http_request(self.url + "/__bench_ready", timeout=2)
                return time.monotonic() - started
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        raise RuntimeError(f"workerd not answering after {timeout:.0f} s:\n{procs.log_tail(self.proc)}")

    def cpu_seconds(self):
        """CPU time (user+system) the workerd process group has used so far."""
        return procs.group_cpu_seconds(self.proc.pid)

    def rss_bytes(self):
        """Resident memory of the workerd process group now."""
        return procs.group_rss_bytes(self.proc.pid)

    def stop(self):
        """Ends workerd (its whole process group)."""
        procs.stop(self.proc)
