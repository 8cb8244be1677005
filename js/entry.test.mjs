// js/entry.js with the real js/runtime.js against a stand-in for the wasm-bindgen module:
// - requests reach the wasm `fetch` with env, ctx and what entry.js read of them (the head
//   without `cf-ray`, the request id, the start time);
// - after a wasm trap (a WebAssembly.RuntimeError, thrown or reported as an uncaught error after
//   an await) the next request runs on a reset instance, once;
// - a decision the core kept for replay (`rememberDecision`, called here by the stand-in as the
//   Rust glue does) answers a request with exactly the same head in the same second without
//   entering wasm, with its own request id and a log line marked `replayed`; anything else
//   (another header or URL, another second, after a logout or a reset) goes to wasm.
import { test, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, copyFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// The runtime's global `addEventListener`, which Node lacks: keep the listeners to fire them.
const listeners = {};
globalThis.addEventListener = (type, fn) => (listeners[type] ??= []).push(fn);

const dir = mkdtempSync(join(tmpdir(), "edge-auth-entry-"));
after(() => rmSync(dir, { recursive: true, force: true }));
copyFileSync(join(here, "entry.js"), join(dir, "entry.js"));
copyFileSync(join(here, "runtime.js"), join(dir, "runtime.js"));
writeFileSync(
  join(dir, "index.js"),
  `import { rememberDecision, forgetDecisions } from "./runtime.js";
const state = { criticalError: false, instanceId: 0 };
export const log = { resets: 0, calls: [], next: null, keep: null };
export { forgetDecisions };
export function __worker_init_state() { return state; }
export function __wbg_reset_state() { log.resets++; }
export function fetch(request, env, ctx, head, rid, started) {
  log.calls.push({ request, env, ctx, head, rid, started });
  const next = log.next; log.next = null;
  if (next) throw next;
  const keep = log.keep; log.keep = null;
  if (keep) rememberDecision(head, Math.floor(started / 1000), ...keep);
  return "answer:" + rid;
}
`,
);
const stub = await import(pathToFileURL(join(dir, "index.js")).href);
const { default: handler } = await import(pathToFileURL(join(dir, "entry.js")).href);
const state = stub.__worker_init_state();

// The origin: every request sent on is kept, and answered 200.
const sent = [];
globalThis.fetch = (req) => {
  sent.push(req);
  return Promise.resolve(new Response("from origin", { status: 200 }));
};
// Log lines, parsed.
const lines = [];
console.log = (line) => {
  if (line.startsWith("{")) lines.push(JSON.parse(line));
};
// A controllable clock.
let clock = 1_800_000_000_000;
Date.now = () => clock;

beforeEach(() => {
  stub.forgetDecisions();
  sent.length = 0;
  lines.length = 0;
});

/** A trap inside a promise callback, as the runtime reports it: an uncaught error event. */
function reportTrapAfterAwait() {
  const errors = console.error;
  console.error = () => {};
  try {
    for (const fn of listeners.error ?? []) fn({ error: new WebAssembly.RuntimeError("unreachable") });
  } finally {
    console.error = errors;
  }
}

const req = (path = "/api/a", headers = {}) =>
  new Request("https://edge.test" + path, { headers: { authorization: "Bearer t0k", ...headers } });

/** What the Rust glue hands over for a forward decision (see `remember` in src/glue.rs). */
const plan = [
  "https://origin.internal/api/a",
  "authorization\nx-auth-subject",
  "Host\norigin.internal\nX-Auth-Subject\nalice",
  "X-Auth-Request-Id",
  '"method":"GET","path":"/api/a","rule":"api","subject":"alice","token_cache_hit":true,"replayed":true,',
  2,
];

test("a request reaches the wasm fetch with env, ctx, its head without cf-ray, its request id and the time", () => {
  const env = { ORIGIN_URL: "x" }, ctx = { waitUntil() {} };
  const r = req("/api/a?x=1", { "cf-ray": "8f00aa-LHR", "x-b": "2" });
  assert.equal(handler.fetch(r, env, ctx), "answer:8f00aa-LHR");
  const call = stub.log.calls.at(-1);
  assert.equal(call.request, r);
  assert.equal(call.env, env);
  assert.equal(call.ctx, ctx);
  assert.equal(call.head, "GET\nhttps://edge.test/api/a?x=1\nauthorization\nBearer t0k\nx-b\n2");
  assert.equal(call.rid, "8f00aa-LHR");
  assert.equal(call.started, clock);
  assert.equal(stub.log.resets, 0);
});

test("without a usable cf-ray the request id is 16 random bytes in hex", () => {
  const ids = new Set();
  for (const ray of [undefined, "", "has space", "x".repeat(65), "é"]) {
    handler.fetch(req("/api/a", ray === undefined ? {} : { "cf-ray": ray }));
    const { rid, head } = stub.log.calls.at(-1);
    assert.match(rid, /^[0-9a-f]{32}$/, `cf-ray ${JSON.stringify(ray)}`);
    assert.ok(!head.includes("cf-ray"));
    ids.add(rid);
  }
  assert.equal(ids.size, 5);
});

test("a trap is rethrown and the next request runs on a reset instance, once", () => {
  const errors = console.error;
  console.error = () => {};
  try {
    stub.log.next = new WebAssembly.RuntimeError("unreachable");
    assert.throws(() => handler.fetch(req()), WebAssembly.RuntimeError);
  } finally {
    console.error = errors;
  }
  assert.equal(state.criticalError, true);
  const id = state.instanceId;
  const resets = stub.log.resets;
  const calls = stub.log.calls.length;
  handler.fetch(req());
  assert.equal(stub.log.calls.length, calls + 1);
  assert.equal(stub.log.resets, resets + 1);
  assert.equal(state.criticalError, false);
  assert.equal(state.instanceId, id + 1);
  handler.fetch(req());
  assert.equal(stub.log.resets, resets + 1, "no second reset without a second trap");
});

test("an ordinary exception is rethrown without resetting the instance", () => {
  const resets = stub.log.resets;
  stub.log.next = new TypeError("not a trap");
  assert.throws(() => handler.fetch(req()), TypeError);
  handler.fetch(req());
  assert.equal(stub.log.resets, resets);
});

test("a trap reported after an await (an uncaught error event) also resets before the next request", () => {
  const resets = stub.log.resets;
  reportTrapAfterAwait();
  handler.fetch(req());
  assert.equal(stub.log.resets, resets + 1);
});

test("a kept decision answers the same head in the same second without wasm, with its own id", async () => {
  stub.log.keep = plan;
  assert.equal(handler.fetch(req("/api/a", { "cf-ray": "ray-1", "x-auth-subject": "mallory" })), "answer:ray-1");
  const calls = stub.log.calls.length;

  clock += 400;
  const answer = await handler.fetch(req("/api/a", { "cf-ray": "ray-\"2", "x-auth-subject": "mallory" }));
  assert.equal(stub.log.calls.length, calls, "answered without entering wasm");
  assert.equal(answer.status, 200);
  assert.equal(sent.length, 1);
  const out = sent[0];
  assert.equal(out.url, "https://origin.internal/api/a");
  assert.equal(out.headers.get("authorization"), null);
  assert.equal(out.headers.get("x-auth-subject"), "alice");
  assert.equal(out.headers.get("x-auth-request-id"), "ray-\"2");
  assert.equal(out.headers.get("cf-ray"), "ray-\"2", "the runtime's own headers are kept");
  assert.equal(out.redirect, "manual");
  assert.deepEqual(lines, [
    {
      request_id: "ray-\"2",
      method: "GET",
      path: "/api/a",
      rule: "api",
      subject: "alice",
      token_cache_hit: true,
      replayed: true,
      decision: "forward",
      status: 200,
      origin_ms: 0,
      total_ms: 0,
    },
  ]);
  clock += 600;
});

test("another header, URL, method or second goes to wasm", async () => {
  stub.log.keep = plan;
  handler.fetch(req("/api/a", { "x-auth-subject": "mallory" }));
  const calls = stub.log.calls.length;
  handler.fetch(req("/api/a", { "x-auth-subject": "mallory", "x-other": "1" }));
  handler.fetch(req("/api/a", { "x-auth-subject": "eve" }));
  handler.fetch(req("/api/a?x", { "x-auth-subject": "mallory" }));
  handler.fetch(new Request("https://edge.test/api/a", { method: "POST", headers: { authorization: "Bearer t0k", "x-auth-subject": "mallory" } }));
  handler.fetch(req("/api/a", { authorization: "Bearer other", "x-auth-subject": "mallory" }));
  assert.equal(stub.log.calls.length, calls + 5);
  await handler.fetch(req("/api/a", { "x-auth-subject": "mallory" }));
  assert.equal(stub.log.calls.length, calls + 5, "the kept head itself still replays");

  clock += 1000;
  handler.fetch(req("/api/a", { "x-auth-subject": "mallory" }));
  assert.equal(stub.log.calls.length, calls + 6, "a new second decides again");
  assert.equal(sent.length, 1);
});

test("a logout (forgetDecisions) and a wasm reset drop every kept decision", () => {
  stub.log.keep = plan;
  handler.fetch(req());
  const calls = stub.log.calls.length;
  stub.forgetDecisions();
  handler.fetch(req());
  assert.equal(stub.log.calls.length, calls + 1, "after forgetDecisions");

  stub.log.keep = plan;
  handler.fetch(req());
  reportTrapAfterAwait();
  handler.fetch(req());
  assert.equal(stub.log.calls.length, calls + 3, "after a reset");
});

test("heads over 4096 characters and decisions from an earlier second are not kept", () => {
  stub.log.keep = plan;
  handler.fetch(req("/api/a", { "x-big": "b".repeat(4096) }));
  const calls = stub.log.calls.length;
  handler.fetch(req("/api/a", { "x-big": "b".repeat(4096) }));
  assert.equal(stub.log.calls.length, calls + 1, "a long head decides every time");

  // A decision from an earlier second than the kept ones (a request that started before the
  // second turned) is not kept, and does not drop the newer ones.
  clock += 1000;
  stub.log.keep = plan;
  handler.fetch(req("/api/b"));
  clock -= 1000;
  stub.log.keep = plan;
  handler.fetch(req("/api/c"));
  clock += 1000;
  handler.fetch(req("/api/c"));
  assert.equal(stub.log.calls.length, calls + 4, "the decision from the earlier second was not kept");
  handler.fetch(req("/api/b"));
  assert.equal(stub.log.calls.length, calls + 4, "the one from this second still replays");
});
