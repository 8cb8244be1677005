// The runtime side of src/glue.rs, in JavaScript: the few places where the worker touches
// `Request`, `Headers`, `fetch` and `console.log` many times per request. Each call from Rust
// into JavaScript decodes its strings and allocates wrapper objects, so the glue crosses once
// per step and the loops run here. No decision is taken here: what to delete, set, log and
// answer comes from the Rust core, and a decision replayed here (`replay`) is one the core
// made for the same request head in the same second and marked replayable.
//
// Wire format shared with `crate::http::{RequestHead::from_flat, flatten_pairs}`: fields
// separated by "\n". Header names and values can never contain "\n" (the runtime's `Headers`
// rejects it, and the core only sets visible ASCII), nor can a parsed URL or method.

const RAY = /^[\x21-\x7e]{1,64}$/;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** What the core may see of the request, in one pass over its headers: [head, request id].
 * `head` is the method, the URL, then name and value of every header except `cf-ray` (lower-case
 * names, repeated headers joined by the runtime), as one string: the core decides on exactly
 * this, so it is also the key under which a decision is replayed. The request id is `cf-ray`
 * when that is 1-64 visible ASCII characters, else 16 random bytes in hex; it never enters the
 * head, so requests that differ only in it share a replayed decision. */
export function readRequest(req) {
  let head = req.method + "\n" + req.url;
  let ray = null;
  // `forEach` rather than `for…of`: the runtime's header iterator costs ≈ 6 µs more per request
  // (measured under workerd, README "Measured").
  req.headers.forEach((value, name) => {
    if (name === "cf-ray") ray = value;
    else head += "\n" + name + "\n" + value;
  });
  return [head, ray !== null && RAY.test(ray) ? ray : randomId()];
}

/** Random bytes for request ids, drawn from the runtime's CSPRNG 4 KiB at a time: one
 * `getRandomValues` per request cost ≈ 6-10 µs under workerd; each byte is used once. */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

function randomId() {
  if (poolAt + 16 > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  let id = "";
  for (let i = poolAt; i < poolAt + 16; i++) id += HEX[pool[i]];
  poolAt += 16;
  return id;
}

function setPairs(headers, flat) {
  if (flat === "") return;
  const parts = flat.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) headers.set(parts[i], parts[i + 1]);
}

/** The request sent on to the origin: the runtime's own request (body streamed, never
 * buffered) with `url`, the headers in `remove` ("\n"-separated) deleted, then `set`
 * (name/value pairs) set. Redirects are passed back to the client, not followed. */
export function originRequest(req, url, remove, set) {
  const init = { method: req.method, headers: req.headers, redirect: "manual" };
  if (req.method !== "GET" && req.method !== "HEAD" && req.body !== null) init.body = req.body;
  // The new request holds its own copy of the headers: edit that one rather than copying them
  // into a `Headers` first (one copy instead of two, ≈ 6 µs per request under workerd).
  const out = new Request(url, init);
  const headers = out.headers;
  if (remove !== "") for (const name of remove.split("\n")) headers.delete(name);
  setPairs(headers, set);
  return out;
}

/** Decisions replayed without entering wasm (`Decision::replayable` in src/gateway.rs): a
 * forward decided with no I/O, from caches whose entries are valid for whole seconds, is the
 * same for every request with the same head within the same second, apart from the request
 * id. Entries are kept by head, all from one second (`replaySecond`); a new second, a logout
 * through this isolate and a wasm reset drop them all. At most `MAX_REPLAYS` entries of heads up
 * to `MAX_REPLAY_HEAD` characters (≈ 1 MiB). */
const MAX_REPLAYS = 256;
const MAX_REPLAY_HEAD = 4096;
const replays = new Map();
let replaySecond = -1;

/** Keeps the core's replayable decision for `head`, decided at Unix second `second`: the plan
 * (`url`, `remove`, `set` without the request-id header `ridHeader`), the log line after its
 * `request_id` field (`logTail`, marked `replayed`) and `LOG_REQUESTS` as `logMode`. */
export function rememberDecision(head, second, url, remove, set, ridHeader, logTail, logMode) {
  if (second !== replaySecond) {
    if (second < replaySecond) return;
    replays.clear();
    replaySecond = second;
  }
  if (head.length > MAX_REPLAY_HEAD || replays.size >= MAX_REPLAYS) return;
  replays.set(head, { url, remove, set, ridHeader, logTail, logMode });
}

/** Drops every kept decision (a logout changed what the core's caches would answer). */
export function forgetDecisions() {
  replays.clear();
}

/** The answer to `req` from a kept decision for exactly this `head` in the second of `started`
 * (a `Date.now()` value), or `undefined` when there is none and the core must decide. */
export function replay(req, head, rid, started) {
  if (replays.size === 0) return undefined;
  const second = Math.floor(started / 1000);
  if (second !== replaySecond) {
    if (second > replaySecond) replays.clear();
    return undefined;
  }
  const d = replays.get(head);
  if (d === undefined) return undefined;
  const set = (d.set === "" ? "" : d.set + "\n") + d.ridHeader + "\n" + rid;
  const logHead = '{"request_id":' + JSON.stringify(rid) + "," + d.logTail;
  return forwardAndLog(req, d.url, d.remove, set, logHead, started, d.logMode);
}

/** What the worker answers when the origin cannot be reached; set once per isolate by the
 * glue from the core's refusal: [status, reason id, headers (pairs), body]. */
let originFailure = [502, "origin_unreachable", "content-type\napplication/json", '{"error":"origin_unreachable"}'];

export function setOriginFailure(status, reason, headers, body) {
  originFailure = [status, reason, headers, body];
}

/** Sends the request on and finishes the request's log line when the origin answers.
 * `logHead` is the core's JSON log line without its closing fields (it ends in "," ); this
 * adds `decision`, `reason`, `status`, `origin_ms` and `total_ms` (milliseconds since
 * `started`, a `Date.now()` value). `logMode` is `LOG_REQUESTS`: 2 `all` logs every answer,
 * 1 `refusals` only an unreachable origin, 0 `none` nothing. */
export function forwardAndLog(req, url, remove, set, logHead, started, logMode) {
  const originStarted = Date.now();
  let sent;
  try {
    sent = fetch(originRequest(req, url, remove, set));
  } catch (e) {
    sent = Promise.reject(e);
  }
  return sent.then(
    (resp) => {
      const now = Date.now();
      if (logMode >= 2) console.log(`${logHead}"decision":"forward","status":${resp.status},"origin_ms":${now - originStarted},"total_ms":${now - started}}`);
      return resp;
    },
    () => {
      const now = Date.now();
      const [status, reason, headers, body] = originFailure;
      if (logMode >= 1) console.log(`${logHead}"decision":"refuse","reason":"${reason}","status":${status},"origin_ms":${now - originStarted},"total_ms":${now - started}}`);
      return new Response(body, { status, headers: pairRecord(headers) });
    },
  );
}

/** Pairs as a record with no prototype (so no name, `__proto__` included, can reach
 * `Object.prototype`); a repeated name keeps its last value. The runtime converts a record to
 * headers for less than a [name, value] list (≈ 8 µs per request, measured on the jose worker).
 * Only for headers the core builds itself (outbound requests, the origin-failure answer), which
 * never repeat a name. */
function pairRecord(flat) {
  const out = Object.create(null);
  if (flat === "") return out;
  const parts = flat.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) out[parts[i]] = parts[i + 1];
  return out;
}

/** One outbound HTTP request (Redis REST, JWKS, discovery) with a timeout covering the
 * answer's body too. Resolves to [status, cache-control or "", body bytes]; rejects with the
 * error's name ("TimeoutError" when the timeout fired). */
export async function send(method, url, headers, body, timeoutMs) {
  const init = { method, headers: pairRecord(headers), signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) init.body = body;
  try {
    const resp = await fetch(url, init);
    const bytes = new Uint8Array(await resp.arrayBuffer());
    return [resp.status, resp.headers.get("cache-control") ?? "", bytes];
  } catch (e) {
    throw String((e && e.name) || "Error");
  }
}

/** The wasm callback `settleInto` reports to (`crate::glue::promise`), set once per instance. */
let onSettled = null;

export function setOnSettled(callback) {
  onSettled = callback;
}

/** Reports the promise's outcome to wasm as (slot, fulfilled?, value or reason). */
export function settleInto(promise, slot) {
  promise.then(
    (value) => onSettled(slot, true, value),
    (reason) => onSettled(slot, false, reason),
  );
}
