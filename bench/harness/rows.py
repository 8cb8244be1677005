"""The rows of the benchmark and what each one measured."""

from dataclasses import dataclass, field
from typing import Optional

from .tokens import ALGS

# Redis round trips per request each mode should cost (checked, never assumed).
EXPECTED_RT = {
    ("none", "hot"): None,
    ("revocation", "cold"): 1.0,
    ("revocation", "hot"): 1.0,
    ("cache", "cold"): 1.0,  # every token new: every request a cache miss
    ("cache", "hot"): 0.0,   # one token, cached during warm-up: every request a hit
    ("jwt", "cold"): 0.0,    # reference rows: signature and claims only, Redis never asked
}


@dataclass
class Row:
    """One target: which worker, which algorithm, which tokens, which revocation mode."""

    key: str
    label: str
    kind: str  # "passthrough" | "floor" | "jose" | "edge"
    alg: Optional[str] = None
    tokens: str = "hot"  # "hot": one repeated token; "cold": a new token every request
    mode: str = "none"  # "none" | "revocation" (every request asks Redis) | "cache" (REVOCATION_CACHE_SECS=60)
    #                     | "jwt" (no revocation check: a reference that splits the cost in two)
    log: str = "all"  # edge-auth's LOG_REQUESTS; targets are judged on the default ("all") only
    duties: bool = False  # jose with DUTIES=edge: also edge-auth's permissions read, rewrite, log line
    vary: bool = False  # a new query on every request: no two heads alike, so no decision is replayed

    @property
    def needs_redis(self):
        """Whether the row needs the Upstash REST server."""
        return self.kind not in ("passthrough", "floor")

    @property
    def reference(self):
        """A row measured for explanation, not judged against a target."""
        return (self.kind == "floor" or self.key == "passthrough-end" or self.log != "all" or self.mode == "jwt"
                or self.duties or self.vary)

    @property
    def memory(self):
        """Whether the isolate memory pass measures this row's worker: the pass-through, jose
        and edge-auth with cold tokens asking Redis, and edge-auth's hot cached row."""
        if self.reference:
            return False
        return (self.kind == "passthrough" or (self.kind == "jose" and self.mode == "revocation")
                or (self.kind == "edge" and (self.tokens, self.mode) in (("cold", "revocation"), ("hot", "cache"))))

    @property
    def jose_key(self):
        """The key of the jose row doing the same job (same algorithm, same revocation mode)."""
        return f"jose-{self.alg}" + ("-jwt" if self.mode == "jwt" else "")

    @property
    def expected_rt(self):
        """Redis round trips per request this row must show, or None when not a target."""
        return EXPECTED_RT.get((self.mode, self.tokens))


@dataclass
class Result:
    """What one row measured, or why it could not be measured."""

    row: Row
    error: Optional[str] = None
    rps: Optional[float] = None
    requests: int = 0
    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    cpu_us_per_req: Optional[float] = None
    redis_rt_per_req: Optional[float] = None
    redis_cmds_per_req: Optional[float] = None
    non_2xx: int = 0
    statuses: dict = field(default_factory=dict)
    socket_errors: int = 0
    rss_mb: Optional[float] = None
    startup_s: Optional[float] = None
    token_pool: Optional[int] = None  # distinct tokens cycled through
    reused_fraction: float = 0.0  # share of requests that reused a token (cold rows)
    probes: dict = field(default_factory=dict)  # name -> (status, expected-ok)
    memory: Optional[dict] = None  # isolate memory pass (bytes): heap_used, heap_live, heap_total, wasm_memory
    memory_error: Optional[str] = None

    @property
    def ok(self):
        """Measured, and every request was answered 2xx."""
        return self.error is None and self.rps is not None

    @property
    def probes_ok(self):
        """Every functional probe answered as a working gateway must."""
        return all(good for _, good in self.probes.values())


def all_rows(algs=ALGS):
    """Every row in run order: pass-through, the JS reference floor, jose per alg (each followed
    by the same worker with edge-auth's duties, a reference), edge-auth per alg and mode (the
    first alg's hot cached row followed by the same with logging of refusals only and the same
    with a new query on every request, references), then the references without revocation: jose and edge-auth per alg,
    cold tokens, signature and claims only."""
    rows = [Row("passthrough", "pass-through JS", "passthrough"),
            Row("floor", "JS forward rewrite + log line, no auth (reference)", "floor")]
    for alg in algs:
        rows.append(Row(f"jose-{alg}", f"jose {alg} cold, revocation", "jose", alg, "cold", "revocation"))
        rows.append(Row(f"jose-{alg}-duties", f"jose {alg} cold, revocation, + edge-auth's duties (reference)",
                        "jose", alg, "cold", "revocation", duties=True))
    for alg in algs:
        for mode in ("revocation", "cache"):
            for tok in ("cold", "hot"):
                what = "revocation" if mode == "revocation" else "cache 60s"
                rows.append(Row(f"edge-{alg}-{tok}-{mode}", f"edge-auth {alg} {tok}, {what}",
                                "edge", alg, tok, mode))
                if alg == algs[0] and tok == "hot" and mode == "cache":
                    # Right after the row it differs from, so that drift does not blur the pair.
                    rows.append(Row(f"edge-{alg}-hot-cache-quiet",
                                    f"edge-auth {alg} hot, cache 60s, LOG_REQUESTS=refusals (reference)",
                                    "edge", alg, "hot", "cache", log="refusals"))
                    rows.append(Row(f"edge-{alg}-hot-cache-vary",
                                    f"edge-auth {alg} hot, cache 60s, a new query per request (reference: no replay)",
                                    "edge", alg, "hot", "cache", vary=True))
    for alg in algs:
        rows.append(Row(f"jose-{alg}-jwt", f"jose {alg} cold, no revocation (reference)", "jose", alg, "cold", "jwt"))
        rows.append(Row(f"edge-{alg}-cold-jwt", f"edge-auth {alg} cold, no revocation (reference)",
                        "edge", alg, "cold", "jwt"))
    # The first row again, last: how far the machine drifted during the run. Ratios and T1 stay
    # against the first pass-through row.
    rows.append(Row("passthrough-end", "pass-through JS, again after every other row (reference: drift)", "passthrough"))
    return rows
