// js/entry.js against a stand-in for the wasm-bindgen module: requests reach the wasm `fetch`
// unchanged, and after a wasm trap (a WebAssembly.RuntimeError, thrown or reported as an
// uncaught error after an await) the next request runs on a reset instance, once.
import { test, after } from "node:test";
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
writeFileSync(
  join(dir, "index.js"),
  `const state = { criticalError: false, instanceId: 0 };
export const log = { resets: 0, calls: [], next: null };
export function __worker_init_state() { return state; }
export function __wbg_reset_state() { log.resets++; }
export function fetch(request, env, ctx) {
  log.calls.push([request, env, ctx]);
  const next = log.next; log.next = null;
  if (next) throw next;
  return "answer:" + request;
}
`,
);
const stub = await import(pathToFileURL(join(dir, "index.js")).href);
const { default: handler } = await import(pathToFileURL(join(dir, "entry.js")).href);
const state = stub.__worker_init_state();

test("a request reaches the wasm fetch with env and ctx, and its answer comes back", () => {
  const env = { ORIGIN_URL: "x" }, ctx = { waitUntil() {} };
  assert.equal(handler.fetch("r1", env, ctx), "answer:r1");
  assert.deepEqual(stub.log.calls.at(-1), ["r1", env, ctx]);
  assert.equal(stub.log.resets, 0);
});

test("a trap is rethrown and the next request runs on a reset instance, once", () => {
  const errors = console.error;
  console.error = () => {};
  try {
    stub.log.next = new WebAssembly.RuntimeError("unreachable");
    assert.throws(() => handler.fetch("r2"), WebAssembly.RuntimeError);
  } finally {
    console.error = errors;
  }
  assert.equal(state.criticalError, true);
  const id = state.instanceId;
  assert.equal(handler.fetch("r3"), "answer:r3");
  assert.equal(stub.log.resets, 1);
  assert.equal(state.criticalError, false);
  assert.equal(state.instanceId, id + 1);
  assert.equal(handler.fetch("r4"), "answer:r4");
  assert.equal(stub.log.resets, 1, "no second reset without a second trap");
});

test("an ordinary exception is rethrown without resetting the instance", () => {
  stub.log.next = new TypeError("not a trap");
  assert.throws(() => handler.fetch("r5"), TypeError);
  assert.equal(handler.fetch("r6"), "answer:r6");
  assert.equal(stub.log.resets, 1);
});

test("a trap reported after an await (an uncaught error event) also resets before the next request", () => {
  const errors = console.error;
  console.error = () => {};
  try {
    for (const fn of listeners.error ?? []) fn({ error: new WebAssembly.RuntimeError("unreachable") });
  } finally {
    console.error = errors;
  }
  assert.equal(handler.fetch("r7"), "answer:r7");
  assert.equal(stub.log.resets, 2);
});
