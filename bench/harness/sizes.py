"""Bundle sizes, and the time `wrangler dev` takes from start to its first answered request."""

import gzip
import json
import os
import shutil
import subprocess
import time

from . import procs, stack


def file_sizes(path):
    """(raw bytes, gzip -9 bytes) of one file."""
    with open(path, "rb") as f:
        data = f.read()
    return len(data), len(gzip.compress(data, compresslevel=9))


def bundle_sizes(files):
    """{name: (raw, gzip)} for each file, plus "total"."""
    out, raw, gz = {}, 0, 0
    for f in files:
        r, g = file_sizes(f)
        out[os.path.basename(f)] = (r, g)
        raw, gz = raw + r, gz + g
    out["total"] = (raw, gz)
    return out


def bundle_jose(esbuild, entry, out_file):
    """Bundles the jose worker (with jose from node_modules) into one ES module."""
    cmd = [esbuild, entry, "--bundle", "--format=esm", "--platform=neutral", "--target=es2022",
           "--minify", f"--outfile={out_file}", "--log-level=warning"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"esbuild failed:\n{proc.stdout}{proc.stderr}")


def toml_str(value):
    """A TOML basic string (JSON string escapes are valid TOML escapes)."""
    return json.dumps(value)


def wrangler_startup(wrangler, bundle_dir, work_dir, bindings, timeout=90.0):
    """Seconds from starting `wrangler dev` (config without [build], prebuilt bundle) to the
    first answered HTTP request, and that answer's status. Stops wrangler's whole group."""
    os.makedirs(work_dir, exist_ok=True)
    for name in ("index.js", "index_bg.wasm"):
        shutil.copy(os.path.join(bundle_dir, name), os.path.join(work_dir, name))
    lines = ['name = "edge-auth-bench"', 'main = "index.js"', 'compatibility_date = "2025-09-01"',
             "", "[vars]"]
    lines += [f"{k} = {toml_str(v)}" for k, v in sorted(bindings.items())]
    with open(os.path.join(work_dir, "wrangler.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    port, inspector = procs.free_port(), procs.free_port()
    env = dict(os.environ, WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false",
               CI="true", NO_COLOR="1")
    started = time.monotonic()
    proc = procs.start([wrangler, "dev", "--config", "wrangler.toml", "--ip", "127.0.0.1",
                        "--port", str(port), "--inspector-port", str(inspector),
                        "--show-interactive-dev-session=false",
                        "--persist-to", os.path.join(work_dir, "state")],
                       os.path.join(work_dir, "wrangler.log"), env=env, cwd=work_dir)
    try:
        deadline = started + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"wrangler dev exited with {proc.returncode}:\n{procs.log_tail(proc)}")
            try:
                status, _ = stack.http_request(f"http://127.0.0.1:{port}/", timeout=2)
                return time.monotonic() - started, status
            except Exception:  # not up yet: refused, reset, or half an answer
                time.sleep(0.05)
        raise RuntimeError(f"wrangler dev not answering after {timeout:.0f} s:\n{procs.log_tail(proc)}")
    finally:
        procs.stop(proc)
