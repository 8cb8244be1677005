// Row 2 of the benchmark: the incumbent way, written as a team would with `jose`.
// Same job and same configuration (text bindings) as edge-auth:
//   1. take the bearer JWT, verify signature, `iss`, `aud`, `exp`/`nbf` with the issuer's keys
//      (`ISSUERS`: inline JWKS, or `hmac_secrets` naming a var that holds the secret);
//   2. ONE Upstash REST round trip for revocation:
//      POST <UPSTASH_REDIS_REST_URL>/pipeline
//        [["EXISTS","<p>revoked:jti:<ih>:<jti>"],["GET","<p>revoked:sub:<ih>:<sub>"]]
//      (`<p>` = REDIS_PREFIX, default "edge-auth:"; `<ih>` = first 16 hex of SHA-256(iss));
//      a present jti, or a subject cutoff later than `iat`, refuses the token; Redis trouble
//      fails closed (503);
//      (`REVOCATION=off` skips this step: the benchmark's reference rows without revocation);
//   3. forward to ORIGIN_URL with identity headers (X-Auth-Subject, X-Auth-Issuer), after
//      dropping any X-Auth-* header the client sent.
// `DUTIES=edge` (reference rows, never a target's baseline) adds what edge-auth also does on
// every request, written as a team would: the subject's permissions read in the same pipeline
// (`SMEMBERS <p>perms:<sub>`), the full header rewrite of bench/workers/floor (client-set
// identity, proxy and rewrite headers and the credential removed; Host, X-Forwarded-*, request
// id, subject, issuer, scopes and revocation state set) and one JSON log line per request.
// Bundled with esbuild into one module by bench/run.py.
import { decodeProtectedHeader, importJWK, jwtVerify } from "jose";

const encoder = new TextEncoder();
let statePromise = null;

function deny(status, reason) {
  const headers = { "content-type": "application/json" };
  if (status === 401) headers["www-authenticate"] = 'Bearer realm="jose-bench", error="invalid_token"';
  return new Response(JSON.stringify({ error: reason }), { status, headers });
}

async function hexSha256(text) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  let out = "";
  for (const b of digest) out += b.toString(16).padStart(2, "0");
  return out;
}

// Parsed once per isolate, like edge-auth's config.
async function loadState(env) {
  const issuers = new Map();
  for (const cfg of JSON.parse(env.ISSUERS ?? "[]")) {
    const keys = new Map(); // kid -> { key, alg }
    for (const jwk of cfg.jwks?.keys ?? []) {
      keys.set(jwk.kid, { key: await importJWK(jwk, jwk.alg), alg: jwk.alg });
    }
    for (const h of cfg.hmac_secrets ?? []) {
      const secret = env[h.secret_var];
      if (typeof secret !== "string" || secret === "") throw new Error(`missing secret var ${h.secret_var}`);
      keys.set(h.kid, { key: encoder.encode(secret), alg: h.alg });
    }
    issuers.set(cfg.issuer, {
      issuer: cfg.issuer,
      audiences: cfg.audiences,
      keys,
      algorithms: [...new Set([...keys.values()].map((k) => k.alg))],
      hash: (await hexSha256(cfg.issuer)).slice(0, 16),
    });
  }
  if (issuers.size === 0) throw new Error("ISSUERS is empty");
  const upstash = (env.UPSTASH_REDIS_REST_URL ?? "").replace(/\/+$/, "");
  if (!upstash || !env.UPSTASH_REDIS_REST_TOKEN) throw new Error("Upstash URL/token missing");
  return {
    issuers,
    // A token names its issuer only inside the (not yet verified) payload; with one issuer
    // configured, as here, that one is used; otherwise `iss` is peeked at and then verified.
    only: issuers.size === 1 ? [...issuers.values()][0] : null,
    origin: new URL(env.ORIGIN_URL),
    upstash: `${upstash}/pipeline`,
    upstashAuth: `Bearer ${env.UPSTASH_REDIS_REST_TOKEN}`,
    prefix: env.REDIS_PREFIX ?? "edge-auth:",
    revocation: env.REVOCATION !== "off",
    duties: env.DUTIES === "edge",
  };
}

function peekIssuer(token) {
  try {
    const part = token.split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(json).iss;
  } catch {
    return undefined;
  }
}

// `null` when the token is revoked, else the subject's permissions (`[]` unless `duties`).
async function revocationCheck(state, iss, payload) {
  const commands = [
    ["EXISTS", `${state.prefix}revoked:jti:${iss.hash}:${payload.jti ?? ""}`],
    ["GET", `${state.prefix}revoked:sub:${iss.hash}:${payload.sub ?? ""}`],
  ];
  if (state.duties) commands.push(["SMEMBERS", `${state.prefix}perms:${payload.sub}`]);
  const res = await fetch(state.upstash, {
    method: "POST",
    headers: { authorization: state.upstashAuth, "content-type": "application/json" },
    body: JSON.stringify(commands),
    signal: AbortSignal.timeout(1000),
  });
  if (!res.ok) throw new Error(`upstash ${res.status}`);
  const [jti, sub, perms] = await res.json();
  if (jti?.error || sub?.error || perms?.error) throw new Error("upstash command error");
  if (Number(jti?.result) > 0) return null;
  if (sub?.result != null) {
    const cutoff = Number(sub.result);
    if (!Number.isFinite(cutoff) || typeof payload.iat !== "number" || payload.iat < cutoff) return null;
  }
  return state.duties ? perms?.result ?? [] : [];
}

// Headers a client must not send to the origin (DUTIES=edge), besides x-auth-* and x-forwarded-*.
const PROXY = new Set([
  "forwarded", "x-real-ip", "true-client-ip", "x-client-ip", "client-ip", "x-cluster-client-ip",
  "x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override",
  "authorization", "host",
]);

function requestId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

// DUTIES=edge: edge-auth's forward (header rewrite, request id) and log line.
async function forwardWithDuties(state, request, iss, payload, permissions, times) {
  const url = new URL(request.url);
  const rid = requestId();
  const headers = new Headers(request.headers);
  for (const [name] of request.headers) {
    if (name.startsWith("x-auth-") || name.startsWith("x-forwarded-") || PROXY.has(name)) headers.delete(name);
  }
  headers.set("Host", state.origin.host);
  const ip = request.headers.get("cf-connecting-ip");
  if (ip) headers.set("X-Forwarded-For", ip);
  headers.set("X-Forwarded-Proto", url.protocol.slice(0, -1));
  headers.set("X-Forwarded-Host", url.host);
  headers.set("X-Auth-Request-Id", rid);
  headers.set("X-Auth-Subject", payload.sub);
  headers.set("X-Auth-Issuer", iss.issuer);
  const scopes = typeof payload.scope === "string" ? payload.scope.split(" ").filter(Boolean) : [];
  headers.set("X-Auth-Scopes", [...new Set([...scopes, ...permissions])].sort().join(" "));
  headers.set("X-Auth-Revocation", state.revocation ? "checked" : "not-required");
  const init = { method: request.method, headers, redirect: "manual" };
  if (request.method !== "GET" && request.method !== "HEAD" && request.body) init.body = request.body;
  const originStarted = Date.now();
  const resp = await fetch(new Request(state.origin.origin + url.pathname + url.search, init));
  const now = Date.now();
  console.log(JSON.stringify({
    request_id: rid, method: request.method, path: url.pathname, rule: "rule0", subject: payload.sub,
    credential: "access_token", verify_ms: times.verify, redis_ms: times.redis, token_cache_hit: false,
    revocation: state.revocation ? "checked" : "not-required", redis_round_trips: state.revocation ? 1 : 0,
    decision: "forward", status: resp.status, origin_ms: now - originStarted, total_ms: now - times.started,
  }));
  return resp;
}

export default {
  async fetch(request, env) {
    const started = Date.now();
    let state;
    try {
      state = await (statePromise ??= loadState(env));
    } catch (e) {
      console.error("config:", e.message);
      return deny(500, "config_invalid");
    }
    const auth = request.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) return deny(401, "credential_missing");
    const token = m[1];

    const iss = state.only ?? state.issuers.get(peekIssuer(token));
    if (!iss) return deny(401, "issuer_unknown");
    let payload;
    const verifyStarted = Date.now();
    try {
      const kid = decodeProtectedHeader(token).kid;
      const entry = iss.keys.get(kid);
      if (!entry) return deny(401, "key_unknown");
      ({ payload } = await jwtVerify(token, entry.key, {
        issuer: iss.issuer,
        audience: iss.audiences,
        algorithms: [entry.alg],
        requiredClaims: ["exp"],
        clockTolerance: 60,
      }));
    } catch {
      return deny(401, "token_invalid");
    }
    if (typeof payload.sub !== "string" || payload.sub === "") return deny(401, "subject_missing");

    const redisStarted = Date.now();
    let permissions = [];
    try {
      if (state.revocation) {
        permissions = await revocationCheck(state, iss, payload);
        if (permissions === null) return deny(401, "token_revoked");
      }
    } catch {
      return deny(503, "revocation_unavailable");
    }
    if (state.duties) {
      const times = { started, verify: redisStarted - verifyStarted, redis: Date.now() - redisStarted };
      return forwardWithDuties(state, request, iss, payload, permissions, times);
    }

    const url = new URL(request.url);
    url.protocol = state.origin.protocol;
    url.host = state.origin.host;
    const headers = new Headers(request.headers);
    for (const name of [...headers.keys()]) if (name.startsWith("x-auth-")) headers.delete(name);
    headers.set("x-auth-subject", payload.sub);
    headers.set("x-auth-issuer", iss.issuer);
    return fetch(url, { method: request.method, headers, body: request.body, redirect: "manual" });
  },
};
