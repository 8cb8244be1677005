"""Targets (PASS/MISS), the results table (terminal + RESULTS.md) and the plot (results.png).

Targets are fixed here and only reported; the benchmark is never tuned to them:
  T1 hot token + staleness cache: requests/s >= 0.8x pass-through;
  T2 cold tokens, every alg (revocation on, the jose worker's job): CPU/request <= 1.0x jose's;
  T3 revocation on: exactly 1 Redis round trip per request on a miss, 0 on a cache hit;
  T4 edge-auth bundle (index.js + index_bg.wasm) <= 1 MiB gzip.
A row that answered anything but 2xx, or failed a functional probe, cannot PASS.
"""

RT_TOLERANCE = 0.02  # wrk stops with up to -c requests in flight; they may have reached Redis
MIB = 1024 * 1024


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def _validity(res):
    """Why a row's numbers cannot PASS a target, or None."""
    if not res.ok:
        return "not measured"
    if res.non_2xx or res.socket_errors:
        return "non-2xx/errors"
    if not res.probes_ok:
        return "probe failed"
    return None


def evaluate(results, bundle_gzip):
    """Per-row list of (target id, text, PASS|MISS|n/a) and the global list."""
    by_key = {r.row.key: r for r in results}
    passthrough = by_key.get("passthrough")
    per_row, overall = {}, []
    for res in results:
        row, checks = res.row, []
        if row.kind != "edge" or row.reference:
            per_row[row.key] = checks
            continue
        bad = _validity(res)
        if row.tokens == "hot" and row.mode == "cache":
            base = passthrough.rps if passthrough and passthrough.ok else None
            if bad or base is None:
                checks.append(("T1", "req/s >= 0.8x pass-through", f"MISS ({bad or 'no pass-through'})"))
            else:
                ratio = res.rps / base
                checks.append(("T1", f"req/s {ratio:.2f}x pass-through (>= 0.8)",
                               "PASS" if ratio >= 0.8 else "MISS"))
        if row.tokens == "cold" and row.mode == "revocation":
            jose = by_key.get(f"jose-{row.alg}")
            if bad or not jose or not jose.ok or _validity(jose) or not jose.cpu_us_per_req:
                why = bad or "no valid jose row"
                checks.append(("T2", "CPU/req <= 1.0x jose", f"MISS ({why})"))
            else:
                ratio = res.cpu_us_per_req / jose.cpu_us_per_req
                checks.append(("T2", f"CPU/req {ratio:.2f}x jose (<= 1.0)",
                               "PASS" if ratio <= 1.0 else "MISS"))
        if row.expected_rt is not None:
            want = row.expected_rt
            if bad or res.redis_rt_per_req is None:
                checks.append(("T3", f"Redis RT/req = {want:g}", f"MISS ({bad or 'not measured'})"))
            else:
                good = abs(res.redis_rt_per_req - want) <= RT_TOLERANCE
                checks.append(("T3", f"Redis RT/req {res.redis_rt_per_req:.3f} (= {want:g})",
                               "PASS" if good else "MISS"))
        per_row[row.key] = checks
    if bundle_gzip is None:
        overall.append(("T4", "bundle <= 1 MiB gzip", "MISS (no build)"))
    else:
        overall.append(("T4", f"bundle {bundle_gzip / 1024:.0f} KiB gzip (<= 1024 KiB)",
                        "PASS" if bundle_gzip <= MIB else "MISS"))
    return per_row, overall


def same_duties(results):
    """Per algorithm, edge-auth's cold revocation row against jose doing the same job (the
    `DUTIES=edge` reference row): (alg, edge CPU, jose CPU, jose-with-duties CPU), for rows that
    were measured and valid. A reference beside T2, never a verdict."""
    by_key = {r.row.key: r for r in results}
    out = []
    for res in results:
        row = res.row
        if row.kind != "edge" or row.reference or row.tokens != "cold" or row.mode != "revocation":
            continue
        jose, duties = by_key.get(f"jose-{row.alg}"), by_key.get(f"jose-{row.alg}-duties")
        if any(r is None or _validity(r) or not r.cpu_us_per_req for r in (res, jose, duties)):
            continue
        out.append((row.alg, res.cpu_us_per_req, jose.cpu_us_per_req, duties.cpu_us_per_req))
    return out


COLUMNS = ["row", "req/s", "x pass", "x jose", "p50 ms", "p99 ms", "CPU us/req", "CPU x jose",
           "Redis RT/req", "non-2xx", "sock err", "RSS MB", "probes", "targets"]


def table_rows(results, per_row):
    """The table as lists of cells (strings), one list per row."""
    by_key = {r.row.key: r for r in results}
    passthrough = by_key.get("passthrough")
    out = []
    for res in results:
        row = res.row
        label = row.label
        if res.reused_fraction > 0.001:
            label += f" ({res.reused_fraction:.0%} tokens reused)"
        if not res.ok:
            out.append([label] + ["-"] * 12 + [f"NOT MEASURED: {res.error.splitlines()[0][:90]}"])
            continue
        jose = by_key.get(row.jose_key) if row.alg else None
        jose = jose if jose and jose.ok else None
        x_pass = res.rps / passthrough.rps if passthrough and passthrough.ok else None
        x_jose = res.rps / jose.rps if jose and row.kind == "edge" else None
        cpu_jose = (res.cpu_us_per_req / jose.cpu_us_per_req
                    if jose and row.kind == "edge" and jose.cpu_us_per_req else None)
        non2xx = str(res.non_2xx)
        if res.non_2xx:
            codes = ",".join(f"{s}:{c}" for s, c in sorted(res.statuses.items()) if not 200 <= s < 300)
            non2xx += f" ({codes})"
        probes = "ok" if res.probes_ok else " ".join(
            f"{name}->{status}" for name, (status, good) in res.probes.items() if not good)
        targets = "; ".join(f"{tid} {verdict}" for tid, _, verdict in per_row.get(row.key, []))
        out.append([
            label, _fmt(res.rps, ",.0f"), _fmt(x_pass, ".2f"), _fmt(x_jose, ".2f"),
            _fmt(res.p50_ms, ".2f"), _fmt(res.p99_ms, ".2f"), _fmt(res.cpu_us_per_req, ".0f"),
            _fmt(cpu_jose, ".2f"), _fmt(res.redis_rt_per_req, ".3f"), non2xx,
            str(res.socket_errors), _fmt(res.rss_mb, ".0f"), probes, targets or "-",
        ])
    return out


MEMORY_COLUMNS = ["row", "V8 heap live MB", "V8 heap used MB (before GC)", "V8 heap reserved MB", "wasm memory MB",
                  "live heap + wasm MB"]


def memory_rows(results):
    """The isolate memory table as lists of cells, for the rows the memory pass measured."""
    out = []
    for res in results:
        if res.memory:
            m = res.memory
            out.append([res.row.label, f"{m['heap_live'] / 1e6:.1f}", f"{m['heap_used'] / 1e6:.1f}",
                        f"{m['heap_total'] / 1e6:.1f}", f"{m['wasm_memory'] / 1e6:.1f}",
                        f"{(m['heap_live'] + m['wasm_memory']) / 1e6:.1f}"])
        elif res.memory_error:
            out.append([res.row.label, "-", "-", "-", "-", f"NOT MEASURED: {res.memory_error.splitlines()[0][:90]}"])
    return out


def text_table(cells, columns=COLUMNS):
    """A plain-text table for the terminal."""
    widths = [max(len(columns[i]), *(len(r[i]) for r in cells)) if cells else len(columns[i])
              for i in range(len(columns))]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    rows = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join([line, "-" * len(line)] + rows)


def markdown_table(cells, columns=COLUMNS):
    """The same table in Markdown."""
    esc = lambda s: s.replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in cells]
    return "\n".join(lines)


def plot(results, path, title):
    """Two bar charts by row: requests/s and worker CPU per request. Rows that answered
    non-2xx, failed a probe or were not measured are drawn hatched in red and labelled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, rps, cpu, colors, hatches = [], [], [], [], []
    palette = {"passthrough": "#4c78a8", "floor": "#9d755d", "jose": "#f58518", "edge": "#54a24b"}
    for res in results:
        bad = _validity(res)
        labels.append(res.row.label + (f"  [{bad}]" if bad else ""))
        rps.append(res.rps or 0)
        cpu.append(res.cpu_us_per_req or 0)
        colors.append("#d62728" if bad else palette[res.row.kind])
        hatches.append("//" if bad else "")
    n = len(labels)
    fig, axes = plt.subplots(1, 2, figsize=(15, 0.42 * n + 2.2), sharey=True)
    ys = list(range(n))[::-1]
    for ax, values, name in ((axes[0], rps, "requests/s (higher is better)"),
                             (axes[1], cpu, "worker CPU per request, us (lower is better)")):
        bars = ax.barh(ys, values, color=colors, edgecolor="black", linewidth=0.4)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        top = max(values) if values and max(values) > 0 else 1
        for y, v in zip(ys, values):
            ax.text(v + top * 0.01, y, f"{v:,.0f}", va="center", fontsize=7)
        ax.set_xlabel(name)
        ax.set_xlim(0, top * 1.15)
        ax.grid(axis="x", alpha=0.3)
    if results and results[0].row.key == "passthrough" and results[0].ok:
        axes[0].axvline(results[0].rps * 0.8, color="gray", linestyle="--", linewidth=0.8)
        axes[0].text(results[0].rps * 0.8, n - 0.4, " 0.8x pass-through", fontsize=7, color="gray")
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(labels, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
