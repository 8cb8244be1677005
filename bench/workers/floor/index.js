// Reference row (not a target): what edge-auth does to a request once it knows the token is
// good, written in plain JavaScript with no authentication at all. It deletes the headers a
// client must not send (X-Auth-*, X-Forwarded-*, Forwarded and the other client-IP and rewrite
// headers edge-auth deletes, the credential, Host), sets the same identity and proxy headers
// edge-auth sets with the benchmark's configuration (fixed values here), forwards, and prints
// one JSON log line of the same shape, written the straightforward way. It is a reference for
// the hot-token row (target T1), not a bound: handing the runtime precomputed strings (as
// js/runtime.js does) costs less (README, "Measured").
const PROXY = new Set([
  "forwarded", "x-real-ip", "true-client-ip", "x-client-ip", "client-ip", "x-cluster-client-ip",
  "x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override",
  "authorization", "host",
]);

let origin = null;

function requestId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export default {
  async fetch(request, env) {
    const started = Date.now();
    origin ??= new URL(env.ORIGIN_URL);
    const url = new URL(request.url);
    const rid = requestId();
    const headers = new Headers(request.headers);
    for (const [name] of request.headers) {
      if (name.startsWith("x-auth-") || name.startsWith("x-forwarded-") || PROXY.has(name)) headers.delete(name);
    }
    headers.set("Host", origin.host);
    const ip = request.headers.get("cf-connecting-ip");
    if (ip) headers.set("X-Forwarded-For", ip);
    headers.set("X-Forwarded-Proto", url.protocol.slice(0, -1));
    headers.set("X-Forwarded-Host", url.host);
    headers.set("X-Auth-Request-Id", rid);
    headers.set("X-Auth-Subject", "bench");
    headers.set("X-Auth-Issuer", "https://bench.local");
    headers.set("X-Auth-Scopes", "");
    headers.set("X-Auth-Revocation", "cached");
    const init = { method: request.method, headers, redirect: "manual" };
    if (request.method !== "GET" && request.method !== "HEAD" && request.body) init.body = request.body;
    const originStarted = Date.now();
    const resp = await fetch(new Request(origin.origin + url.pathname + url.search, init));
    const now = Date.now();
    console.log(JSON.stringify({
      request_id: rid, method: request.method, path: url.pathname, rule: "rule0", subject: "bench",
      credential: "access_token", verify_ms: 0, token_cache_hit: true, revocation: "cached",
      redis_round_trips: 0, decision: "forward", status: resp.status,
      origin_ms: now - originStarted, total_ms: now - started,
    }));
    return resp;
  },
};
