#!/usr/bin/env python3
"""edge-auth benchmark: `python3 bench/run.py` (or `bash bench/run`); see bench/README.md.

In one go on 127.0.0.1: starts the origin, redis-server and the Upstash REST server once, then
for each row starts its worker under raw `workerd serve`, checks it with a few functional
probes, warms it up, and loads it with wrk (-t1 -c8). Prints the table and writes
bench/RESULTS.md and bench/results.png. Every process is started in its own process group and
ended on exit, error or Ctrl-C.

This file only uses the standard library until it has re-executed itself inside bench/.venv
(made on first use from bench/requirements.txt: PyJWT, cryptography, matplotlib).
"""

import argparse
import datetime
import functools
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
VENV = os.path.join(BENCH, ".venv")
# Seconds of load before a worker's isolate memory is read (at most the rows' --duration).
MEMORY_LOAD_S = 5


def bootstrap():
    """Re-executes inside bench/.venv, creating it or refreshing its packages when needed."""
    venv_python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    req = os.path.join(BENCH, "requirements.txt")
    with open(req, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(VENV, ".requirements.sha256")
    have = open(stamp).read().strip() if os.path.exists(stamp) else None
    if have != want or not os.path.exists(venv_python):
        print("[bench] preparing bench/.venv (PyJWT, cryptography, matplotlib from PyPI)", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True, timeout=300)
            subprocess.run([venv_python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "-r", req], check=True, timeout=900)
            with open(stamp, "w") as f:
                f.write(want + "\n")
        except (subprocess.SubprocessError, OSError) as e:
            print(f"[bench] venv failed ({e}); trying pip install --user", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--user", "-r", req],
                           check=True, timeout=900)
            return
    os.execv(venv_python, [venv_python, os.path.abspath(__file__)] + sys.argv[1:])


def parse_args():
    p = argparse.ArgumentParser(description="edge-auth benchmark on raw workerd (loopback only)")
    p.add_argument("--duration", type=float, default=10, help="seconds of measured load per row (default 10)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up per row (default 2; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s per row, 1 s warm-up")
    p.add_argument("--algs", default="HS256,RS256,ES256,EdDSA", help="comma-separated algorithms")
    p.add_argument("--rows", default=None, help="only rows whose key contains this text (pass-through and the JS floor always run)")
    p.add_argument("--build-dir", default=None, help="edge-auth bundle dir (index.js + index_bg.wasm); default <repo>/build")
    p.add_argument("--origin", choices=("auto", "node"), default="auto", help="auto: test-origin binary if built, else Node")
    p.add_argument("--max-cold-tokens", type=int, default=150_000, help="cap on distinct tokens per algorithm")
    p.add_argument("--no-wrangler", action="store_true", help="skip the wrangler dev startup measurement")
    p.add_argument("--out", default=os.path.join(BENCH, "RESULTS.md"), help="Markdown results file")
    p.add_argument("--plot", default=os.path.join(BENCH, "results.png"), help="PNG plot file")
    p.add_argument("--keep-scratch", action="store_true", help="keep token files in bench/.out")
    a = p.parse_args()
    if a.quick:
        a.duration = 2
    if a.warmup is None:
        a.warmup = 1 if a.quick else 2
    a.duration = max(1, int(math.ceil(a.duration)))
    a.warmup = max(1, int(math.ceil(a.warmup)))
    return a


def say(msg):
    print(f"[bench] {msg}", flush=True)


def keep_log_tail(log):
    """Replaces a workerd log by its last lines (`<log>.tail`): per-request lines add up."""
    from harness import procs

    tail = procs.log_tail(log, 5)
    try:
        os.remove(log)
        with open(log + ".tail", "w") as f:
            f.write(tail + "\n")
    except OSError:
        pass


@functools.cache
def node_with_websocket():
    """The Node command line that has `WebSocket` (for the inspector), looked up once: Node 20
    and 21 have it only behind a flag; later versions have it by default."""
    node = shutil.which("node") or "node"
    major = cmd_version([node, "--version"]).lstrip("v").split(".")[0]
    return (node, "--experimental-websocket") if not major.isdigit() or int(major) < 22 else (node,)


def cmd_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


class Bench:
    """One benchmark run: the shared stack, the workers' bundles, tokens, and the results."""

    def __init__(self, args):
        from harness import load, tokens

        self.args = args
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_root = os.path.join(BENCH, ".out")
        os.makedirs(out_root, exist_ok=True)
        for old in os.listdir(out_root):  # earlier runs' scratch (token files can be large)
            if old.startswith("run-"):
                shutil.rmtree(os.path.join(out_root, old), ignore_errors=True)
        self.out = os.path.join(out_root, f"run-{stamp}")
        os.makedirs(self.out)
        self.wrk = load.ensure_wrk()
        self.lua = os.path.join(BENCH, "wrk", "tokens.lua")
        self.workerd = os.environ.get("WORKERD_BIN") or os.path.join(REPO, "node_modules", ".bin", "workerd")
        if not os.access(self.workerd, os.X_OK):
            raise SystemExit(f"workerd not found at {self.workerd}: run `bash scripts/bootstrap` (npm ci)")
        self.algs = [a.strip() for a in args.algs.split(",") if a.strip()]
        for a in self.algs:
            if a not in tokens.ALGS:
                raise SystemExit(f"unknown algorithm {a}; known: {', '.join(tokens.ALGS)}")
        self.notes = []
        self.info = {}
        self.sizes = {}
        self.bundle_errors = {}
        self.origin = self.redis = self.upstash = None
        self.upstash_error = None
        self.keys = {}
        self.token_files = {}  # (alg, "hot"|"cold"|"warm") -> (path, count)
        self.cold_pool = None
        self.results = []
        self.wrangler = None

    # ---- preparation -------------------------------------------------------------------

    def prepare_bundles(self):
        from harness import sizes

        pt = os.path.join(self.out, "passthrough")
        os.makedirs(pt)
        shutil.copy(os.path.join(BENCH, "workers", "passthrough", "index.js"), pt)
        self.sizes["pass-through JS"] = sizes.bundle_sizes([os.path.join(pt, "index.js")])
        floor = os.path.join(self.out, "floor")
        os.makedirs(floor)
        shutil.copy(os.path.join(BENCH, "workers", "floor", "index.js"), floor)

        jose = os.path.join(self.out, "jose")
        os.makedirs(jose)
        esbuild = os.environ.get("ESBUILD_BIN") or os.path.join(REPO, "node_modules", ".bin", "esbuild")
        try:
            sizes.bundle_jose(esbuild, os.path.join(BENCH, "workers", "jose", "index.js"),
                              os.path.join(jose, "index.js"))
            self.sizes["jose JS (esbuild, minified)"] = sizes.bundle_sizes([os.path.join(jose, "index.js")])
        except Exception as e:  # noqa: BLE001 - reported in the table
            self.bundle_errors["jose"] = f"jose bundle: {e}"

        build = self.args.build_dir or os.path.join(REPO, "build")
        self.info["edge-auth build"] = build
        edge = os.path.join(self.out, "edge-auth")
        os.makedirs(edge)
        files = [os.path.join(build, n) for n in ("index.js", "index_bg.wasm")]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            self.bundle_errors["edge"] = (f"no edge-auth build ({', '.join(missing)} missing): "
                                          "run `bash scripts/build-worker` or pass --build-dir")
        else:
            for f in files:
                shutil.copy(f, edge)
            self.sizes["edge-auth (Rust/wasm)"] = sizes.bundle_sizes([os.path.join(edge, "index.js"),
                                                                       os.path.join(edge, "index_bg.wasm")])
            mtime = os.path.getmtime(os.path.join(build, "index_bg.wasm"))
            self.info["edge-auth build time"] = datetime.datetime.fromtimestamp(mtime).isoformat(timespec="seconds")

    def start_stack(self):
        from harness import stack

        self.origin = stack.Origin(REPO, BENCH, self.out, prefer_node=self.args.origin == "node")
        self.info["origin"] = f"{self.origin.kind} at {self.origin.url}"
        binary = stack.find_binary("upstash-rest-server", "UPSTASH_SERVER_BIN", REPO)
        if not binary:
            self.upstash_error = ("upstash-rest-server not built: build it (cargo build -p edge-auth-tools "
                                  "--bin upstash-rest-server) or set UPSTASH_SERVER_BIN")
            self.info["Upstash REST server"] = "MISSING: " + self.upstash_error
            return
        try:
            self.redis = stack.Redis(self.out)
            self.upstash = stack.Upstash(binary, self.redis, self.out)
            profile = "release" if "/release/" in binary else "debug" if "/debug/" in binary else "?"
            self.info["Upstash REST server"] = f"{binary} ({profile} build) at {self.upstash.url}"
            self.info["redis-server"] = f"{cmd_version(['redis-server', '--version'])} at {self.redis.url}"
        except Exception as e:  # noqa: BLE001 - reported on every Redis row
            self.upstash_error = f"Redis stack failed: {e}"
            self.info["Upstash REST server"] = "FAILED: " + str(e).splitlines()[0]

    def make_keys(self):
        from harness import tokens

        for alg in self.algs:
            ks = tokens.KeySet(alg)
            self.keys[alg] = ks
            for kind, count in (("hot", 1), ("warm", 500)):
                path = os.path.join(self.out, f"tokens-{alg}-{kind}.txt")
                ks.mint_file(path, count, f"{kind}-{os.urandom(4).hex()}")
                self.token_files[(alg, kind)] = (path, count)

    def cold_tokens(self, alg):
        """The cold token file of `alg`, minted on first use (between rows, never under load)."""
        if (alg, "cold") not in self.token_files:
            path = os.path.join(self.out, f"tokens-{alg}-cold.txt")
            n = self.cold_pool
            say(f"  minting {n:,} distinct {alg} tokens (PyJWT) ...")
            took = self.keys[alg].mint_file(path, n, f"cold-{os.urandom(4).hex()}")
            say(f"  minted in {took:.1f} s")
            self.token_files[(alg, "cold")] = (path, n)
        return self.token_files[(alg, "cold")]

    # ---- one row -----------------------------------------------------------------------

    def bindings(self, row):
        from harness import tokens

        b = {"ORIGIN_URL": self.origin.url}
        if row.kind in ("passthrough", "floor"):
            return b
        if row.log != "all":
            b["LOG_REQUESTS"] = row.log
        b.update(self.keys[row.alg].worker_vars())
        b.update({
            "UPSTASH_REDIS_REST_URL": self.upstash.url,
            "UPSTASH_REDIS_REST_TOKEN": self.upstash.token,
            "REDIS_PREFIX": "bench:",
            "ROUTES": '[{"path": "/**", "auth": "%s"}]' % ("jwt" if row.mode == "jwt" else "jwt+revocation"),
            "REVOCATION_CACHE_SECS": "60" if row.mode == "cache" else "0",
        })
        if row.kind == "jose" and row.mode == "jwt":
            b["REVOCATION"] = "off"
        if row.duties:
            b["DUTIES"] = "edge"
        assert b["ISSUERS"] and tokens.ISSUER in b["ISSUERS"]
        return b

    def probes(self, row, url, res):
        """Functional checks before load: a gateway that lets anything through is no gateway."""
        from harness import stack, tokens

        alg = row.alg or self.algs[0]
        ks = self.keys[alg]
        good = ks.mint(f"probe-{row.key}", f"probe-ok-{os.urandom(4).hex()}")

        def get(token):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                status, _ = stack.http_request(url + "/bench/probe", headers=headers, timeout=10)
                return status
            except Exception:  # noqa: BLE001 - shown as status 0
                return 0

        s = get(good)
        res.probes["valid"] = (s, 200 <= s < 300)
        if row.kind in ("passthrough", "floor"):
            return
        s = get(None)
        res.probes["none"] = (s, s == 401)
        s = get(ks.tampered(good))
        res.probes["bad-sig"] = (s, s == 401)
        if row.mode == "jwt":
            return  # no revocation check configured: a revoked token is not refused here
        jti = f"probe-revoked-{os.urandom(4).hex()}"
        revoked = ks.mint(f"probe-{row.key}", jti)
        key = f"bench:revoked:jti:{tokens.issuer_hash(tokens.ISSUER)}:{jti}"
        self.upstash.command("SET", key, "1", "EX", "600")
        s = get(revoked)
        res.probes["revoked"] = (s, s == 401)

    def row_tokens(self, row):
        """(token file, warm-up token file, distinct tokens) for `row`'s load."""
        alg = row.alg or self.algs[0]
        if row.tokens == "cold":
            token_file, pool = self.cold_tokens(alg)
            return token_file, self.token_files[(alg, "warm")][0], pool
        token_file, pool = self.token_files[(alg, "hot")]
        return token_file, token_file, pool

    def write_row_config(self, row, name, v8_flags=()):
        """Writes the workerd config of `row`'s worker, on a free port, as `<name>.capnp`."""
        from harness import procs, workerd

        wdir = os.path.join(self.out, {"passthrough": "passthrough", "floor": "floor", "jose": "jose", "edge": "edge-auth"}[row.kind])
        modules = [("index.js", "esModule", "index.js")]
        if row.kind == "edge":
            modules.append(("index_bg.wasm", "wasm", "index_bg.wasm"))
        config = os.path.join(wdir, f"{name}.capnp")
        workerd.write_config(config, procs.free_port(), modules, self.bindings(row), v8_flags)
        return config

    def measure_memory(self, res):
        """The isolate memory of `res.row`'s worker (`harness/isolate_memory.mjs`) after
        `MEMORY_LOAD_S` s of the row's load, in a workerd of its own started with the inspector:
        an inspector costs CPU, so it is never attached to a row whose CPU is measured. V8 runs
        with `--expose-gc` there, so that the live heap is read after a full GC."""
        from harness import load, procs, workerd

        row = res.row
        token_file, warm_file, _ = self.row_tokens(row)
        config = self.write_row_config(row, f"{row.key}-memory", ("--expose-gc",))
        log = os.path.join(self.out, f"workerd-{row.key}-memory.log")
        inspector = procs.free_port()
        w = workerd.Workerd(self.workerd, config, log, inspector_port=inspector)
        try:
            load.run_wrk(self.wrk, self.lua, w.url, self.args.warmup, warm_file, latency=False, vary=row.vary)
            load.run_wrk(self.wrk, self.lua, w.url, min(MEMORY_LOAD_S, self.args.duration), token_file, 0,
                         latency=False, vary=row.vary)
            out = subprocess.run([*node_with_websocket(), os.path.join(BENCH, "harness", "isolate_memory.mjs"), str(inspector)],
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise RuntimeError((out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1])
            res.memory = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            w.stop()
            keep_log_tail(log)

    def run_row(self, row, index, total):
        from harness import load, procs, workerd
        from harness.rows import Result

        res = Result(row)
        say(f"[{index:2d}/{total}] {row.label}")
        if row.kind == "jose" and "jose" in self.bundle_errors:
            res.error = self.bundle_errors["jose"]
            return res
        if row.kind == "edge" and "edge" in self.bundle_errors:
            res.error = self.bundle_errors["edge"]
            return res
        if row.needs_redis and self.upstash is None:
            res.error = self.upstash_error
            return res

        token_file, warm_file, pool = self.row_tokens(row)
        res.token_pool = pool

        config = self.write_row_config(row, row.key)
        log = os.path.join(self.out, f"workerd-{row.key}.log")
        w = workerd.Workerd(self.workerd, config, log)
        try:
            res.startup_s = w.startup_seconds
            self.probes(row, w.url, res)
            load.run_wrk(self.wrk, self.lua, w.url, self.args.warmup, warm_file, latency=False, vary=row.vary)
            cpu0 = w.cpu_seconds()
            stats0 = self.upstash.stats() if self.upstash else None
            r = load.run_wrk(self.wrk, self.lua, w.url, self.args.duration, token_file, 0, vary=row.vary)
            stats1 = self.upstash.stats() if self.upstash else None
            cpu1 = w.cpu_seconds()
            res.rss_mb = w.rss_bytes() / 1e6
            if w.proc.poll() is not None:
                raise RuntimeError(f"workerd died during the run:\n{procs.log_tail(w.proc)}")
        finally:
            w.stop()
            keep_log_tail(log)
        if r.requests == 0:
            res.error = f"no request completed: {r.raw[-300:]}"
            return res
        res.requests = r.requests
        res.rps = r.rps
        res.p50_ms, res.p99_ms = r.p50_ms, r.p99_ms
        res.cpu_us_per_req = (cpu1 - cpu0) / r.requests * 1e6
        res.non_2xx = r.non_2xx
        res.statuses = r.statuses
        res.socket_errors = r.socket_errors
        if stats0 and stats1:
            res.redis_rt_per_req = (stats1[0] - stats0[0]) / r.requests
            res.redis_cmds_per_req = (stats1[1] - stats0[1]) / r.requests
        if row.tokens == "cold" and r.requests > pool:
            res.reused_fraction = (r.requests - pool) / r.requests
        rt = "-" if res.redis_rt_per_req is None else f"{res.redis_rt_per_req:.3f}"
        probes = "ok" if res.probes_ok else ", ".join(f"{k}->{s}" for k, (s, g) in res.probes.items() if not g)
        say(f"  {res.rps:,.0f} req/s  p50 {res.p50_ms:.2f} ms  p99 {res.p99_ms:.2f} ms  "
            f"CPU {res.cpu_us_per_req:.0f} us/req  Redis RT/req {rt}  non-2xx {res.non_2xx}  "
            f"sock-err {res.socket_errors}  probes {probes}")
        return res

    # ---- the whole run -----------------------------------------------------------------

    def run(self):
        from harness import rows as rows_mod, sizes
        from harness.rows import Result

        a = self.args
        self.info["load average before"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        self.prepare_bundles()
        self.start_stack()
        say(f"origin: {self.info['origin']}")
        say(f"Upstash: {self.info['Upstash REST server']}")
        self.make_keys()
        todo = rows_mod.all_rows(self.algs)
        if a.rows:
            todo = [r for r in todo if r.kind in ("passthrough", "floor") or a.rows in r.key]
        self.cold_pool = min(a.max_cold_tokens, 8000 * a.duration + 1000)
        for i, row in enumerate(todo, 1):
            try:
                res = self.run_row(row, i, len(todo))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - one row's failure is a table entry
                res = Result(row, error=f"{type(e).__name__}: {e}")
                say(f"  NOT MEASURED: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                if os.environ.get("BENCH_DEBUG"):
                    traceback.print_exc()
                self.results.append(res)
                continue
            if res.error:
                say(f"  NOT MEASURED: {res.error.splitlines()[0]}")
            self.results.append(res)
            if row.key == "passthrough" and res.ok:
                # No row can outrun the pass-through: size the cold pools on its rate.
                # Margin for a noisy pass-through run; reuse is still measured and reported.
                rate = max(res.rps * 1.5, 3000)
                self.cold_pool = min(a.max_cold_tokens, int(rate * a.duration) + 1000)
        mem_rows = [r for r in self.results if r.ok and r.row.memory]
        for i, res in enumerate(mem_rows, 1):
            say(f"[memory {i}/{len(mem_rows)}] {res.row.label}")
            try:
                self.measure_memory(res)
                m = res.memory
                say(f"  V8 heap {m['heap_live'] / 1e6:.1f} MB live after GC ({m['heap_used'] / 1e6:.1f} MB used before, "
                    f"{m['heap_total'] / 1e6:.1f} MB reserved), wasm memory {m['wasm_memory'] / 1e6:.1f} MB")
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - reported in the memory table
                res.memory_error = f"{type(e).__name__}: {e}"
                say(f"  NOT MEASURED: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        if not a.no_wrangler:
            if "edge" in self.bundle_errors:
                self.wrangler = ("error", self.bundle_errors["edge"])
            else:
                say("wrangler dev startup (config without [build], prebuilt bundle) ...")
                try:
                    b = {"ORIGIN_URL": self.origin.url}
                    if self.upstash:
                        b.update(self.bindings(rows_mod.Row("x", "x", "edge", self.algs[0], "hot", "revocation")))
                    secs, status = sizes.wrangler_startup(
                        os.path.join(REPO, "node_modules", ".bin", "wrangler"),
                        os.path.join(self.out, "edge-auth"), os.path.join(self.out, "wrangler"), b)
                    self.wrangler = ("ok", secs, status)
                    say(f"  first answer after {secs:.2f} s (HTTP {status})")
                except Exception as e:  # noqa: BLE001
                    self.wrangler = ("error", str(e))
                    say(f"  NOT MEASURED: {str(e).splitlines()[0]}")
        self.info["load average after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    def stop(self):
        from harness import procs

        for part in (self.upstash, self.redis, self.origin):
            if part is not None:
                procs.stop(part.proc)
        if not self.args.keep_scratch:
            for path, _ in self.token_files.values():
                try:
                    os.remove(path)
                except OSError:
                    pass

    # ---- report ------------------------------------------------------------------------

    def report(self, interrupted=False):
        from harness import report

        a = self.args
        edge_total = self.sizes.get("edge-auth (Rust/wasm)", {}).get("total")
        per_row, overall = report.evaluate(self.results, edge_total[1] if edge_total else None)
        cells = report.table_rows(self.results, per_row)
        print()
        print(report.text_table(cells))
        print()
        for tid, text, verdict in overall:
            print(f"{tid} {text}: {verdict}")
        for name, files in self.sizes.items():
            parts = ", ".join(f"{f} {raw:,} B raw / {gz:,} B gzip"
                              for f, (raw, gz) in files.items())
            print(f"size {name}: {parts}")
        if self.wrangler and self.wrangler[0] == "ok":
            print(f"wrangler dev start to first answer: {self.wrangler[1]:.2f} s (HTTP {self.wrangler[2]})")
        elif self.wrangler:
            print(f"wrangler dev start: NOT MEASURED: {self.wrangler[1].splitlines()[0]}")
        summary = {}
        for checks in per_row.values():
            for tid, _, verdict in checks:
                summary.setdefault(tid, []).append(verdict.split()[0])
        for tid, verdicts in sorted(summary.items()):
            print(f"{tid}: {verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS")
        memory = report.memory_rows(self.results)
        if memory:
            print()
            print("isolate memory (separate pass, inspector attached, after the row's load):")
            print(report.text_table(memory, report.MEMORY_COLUMNS))
        duties = report.same_duties(self.results)
        for alg, edge, jose, jd in duties:
            print(f"same duties ({alg}, cold, revocation): edge-auth {edge:.0f} us CPU/req = "
                  f"{edge / jose:.2f}x jose, {edge / jd:.2f}x jose with edge-auth's duties ({jd:.0f} us)")

        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = "python3 bench/run.py " + " ".join(sys.argv[1:])
        md = ["# edge-auth benchmark results", ""]
        if a.quick or interrupted:
            md += [f"> **{'SMOKE RUN (--quick)' if a.quick else 'INTERRUPTED RUN'}: numbers are not "
                   "a benchmark result.** Re-run `python3 bench/run.py` on a quiet machine.", ""]
        md += [f"Generated by `{cmd.strip()}` on {now}. Rows ran one at a time against the same "
               f"origin with wrk `-t1 -c8 -d{a.duration}s --latency` after a {a.warmup} s warm-up, each "
               "worker under raw `workerd serve` (not wrangler dev). All processes on 127.0.0.1 of "
               "one machine share its cores: compare rows of one run, not numbers across runs.", ""]
        md += ["## Setup", ""]
        for k, v in self.info.items():
            md.append(f"- {k}: {v}")
        md += ["", "## Results", "", report.markdown_table(cells), "",
               "Columns: `x pass` / `x jose` = requests/s relative to the pass-through row and to the "
               "jose row of the same algorithm; `CPU us/req` = utime+stime of the workerd process "
               "during the measured run / requests completed; `Redis RT/req` = HTTP requests the "
               "Upstash REST server saw (its `/__stats`) / requests completed; `non-2xx` with the "
               "status codes; `sock err` = wrk connect/read/write/timeout errors; `RSS MB` = workerd "
               "resident memory after the run; `probes` = functional checks before the load "
               "(valid token -> 2xx; no token, bad signature, revoked jti -> 401); a row that "
               "answered non-2xx or failed a probe cannot PASS a target.", "",
               "![requests/s and CPU per request by row](results.png)", "", "## Targets", ""]
        md += [f"- **{tid}** {text}: **{verdict}**" for tid, text, verdict in overall]
        for res in self.results:
            for tid, text, verdict in per_row.get(res.row.key, []):
                md.append(f"- **{tid}** {res.row.label}: {text}: **{verdict}**")
        if duties:
            md += ["", "## Same job (reference, not a target)", "",
                   "T2 compares with the jose worker as the issue describes it (verify, one Upstash "
                   "call, two identity headers). The `+ edge-auth's duties` rows run the same worker "
                   "with `DUTIES=edge`: the permissions read in the same pipeline, edge-auth's full "
                   "header rewrite and request id, and one JSON log line per request.", "",
                   "| alg | edge-auth CPU us/req | jose | x jose | jose + duties | x jose + duties |",
                   "|---|---|---|---|---|---|"]
            md += [f"| {alg} | {edge:.0f} | {jose:.0f} | {edge / jose:.2f} | {jd:.0f} | {edge / jd:.2f} |"
                   for alg, edge, jose, jd in duties]
        if memory:
            md += ["", "## Isolate memory", "",
                   f"Measured in a separate pass after the rows above: each worker again in a workerd "
                   f"of its own, started with `--inspector-addr` and the V8 flag `--expose-gc`, warmed "
                   f"up, given {min(MEMORY_LOAD_S, a.duration)} s of its row's load, then read through the "
                   "DevTools protocol (`bench/harness/isolate_memory.mjs`): the V8 heap of the isolate "
                   "(`Runtime.getHeapUsage`: used, garbage included, then live after a full `gc()`, and "
                   "reserved) and the linear memory of every `WebAssembly.Memory` in it "
                   "(`Runtime.queryObjects`), which the heap figures do not count. Never during the CPU "
                   "rows: an attached inspector costs CPU. The `RSS MB` column above is the whole workerd "
                   "process (runtime, compiled code, allocator caches), which keeps growing for tens of "
                   "seconds under load in every worker.", "",
                   report.markdown_table(memory, report.MEMORY_COLUMNS)]
        md += ["", "## Sizes", "", "| bundle | file | raw bytes | gzip -9 bytes |", "|---|---|---|---|"]
        for name, files in self.sizes.items():
            for fname, (raw, gz) in files.items():
                md.append(f"| {name} | {fname} | {raw:,} | {gz:,} |")
        md += ["", "## Startup", ""]
        if self.wrangler is None:
            md.append("- wrangler dev: not measured (--no-wrangler)")
        elif self.wrangler[0] == "ok":
            md.append(f"- `wrangler dev` (config without [build], prebuilt bundle) start to first answered "
                      f"request: **{self.wrangler[1]:.2f} s** (HTTP {self.wrangler[2]})")
        else:
            md.append(f"- wrangler dev: NOT MEASURED: {self.wrangler[1].splitlines()[0]}")
        seen = set()
        for res in self.results:
            if res.startup_s is not None and res.row.kind not in seen:
                seen.add(res.row.kind)
                md.append(f"- raw `workerd serve` ({res.row.kind}) start to first answered request: "
                          f"{res.startup_s:.2f} s")
        cold = [(alg, n) for (alg, kind), (_, n) in self.token_files.items() if kind == "cold"]
        if cold:
            md += ["", "## Tokens", "",
                   "Cold rows cycle through distinct pre-minted tokens (one new token per request until "
                   "the pool is used up; the table says when tokens were reused). Hot rows repeat one "
                   "token. Warm-up uses a separate pool of 500 tokens."]
            md += [f"- {alg}: {n:,} distinct cold tokens" for alg, n in cold]
        failed = [r for r in self.results if not r.ok]
        md += ["", "## Not measured", ""]
        if failed:
            for r in failed:
                md.append(f"- {r.row.label}: {r.error.splitlines()[0]}")
        else:
            md.append("- nothing: every row ran")
        if self.bundle_errors:
            md += [f"- {v}" for v in self.bundle_errors.values()]
        invalid = [r for r in self.results if r.ok and (r.non_2xx or r.socket_errors or not r.probes_ok)]
        if invalid:
            md += ["", "Rows that ran but whose numbers are not those of a working gateway "
                   "(they cannot PASS a target):", ""]
            for r in invalid:
                why = []
                if not r.probes_ok:
                    why.append("probes " + ", ".join(f"{k} -> HTTP {st}" for k, (st, g) in r.probes.items() if not g))
                if r.non_2xx:
                    why.append(f"{r.non_2xx} non-2xx answers")
                if r.socket_errors:
                    why.append(f"{r.socket_errors} socket errors")
                md.append(f"- {r.row.label}: {'; '.join(why)}")
        if interrupted:
            md.append("- the run was interrupted; rows after the last one listed did not run")
        with open(a.out, "w") as f:
            f.write("\n".join(md) + "\n")
        say(f"wrote {os.path.relpath(a.out)}")
        try:
            title = (f"edge-auth benchmark {now} (wrk -t1 -c8 -d{a.duration}s, raw workerd)"
                     + ("  SMOKE RUN" if a.quick else ""))
            report.plot(self.results, a.plot, title)
            say(f"wrote {os.path.relpath(a.plot)}")
        except Exception as e:  # noqa: BLE001 - the table is the result; the plot is a view of it
            say(f"plot failed: {e}")


def main():
    bootstrap()
    sys.path.insert(0, BENCH)
    from harness import procs

    args = parse_args()
    procs.install_handlers()
    bench = Bench(args)
    bench.info.update({
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}",
        "workerd": cmd_version([bench.workerd, "--version"]),
        "wrk": cmd_version([bench.wrk, "-v"]),
        "node": cmd_version(["node", "--version"]),
        "repo commit": cmd_version(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
    })
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping every process, writing what was measured")
    finally:
        bench.stop()
        procs.stop_all()
    bench.report(interrupted=interrupted)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
