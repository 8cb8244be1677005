// The memory of one worker's isolate, read through workerd's inspector (DevTools protocol).
//   node [--experimental-websocket] bench/harness/isolate_memory.mjs <inspector port> [service]
// (the flag on Node 20 and 21, whose `WebSocket` is behind it)
// Prints one JSON line, in bytes: "heap_used" and "heap_total", the V8 heap of the isolate as
// `Runtime.getHeapUsage` reports it (used, garbage included, and reserved); "heap_live", used
// after a full GC; "wasm_memory", the linear memory of every `WebAssembly.Memory` alive in the
// isolate (found with `Runtime.queryObjects`; the heap figures do not count it), and
// "wasm_memories", how many there are. The GC is `gc()` evaluated in the worker, so workerd must
// run with the V8 flag `--expose-gc` (its inspector does not answer
// `HeapProfiler.collectGarbage`). Exits non-zero, with the reason on stderr, if a step fails.
const [port, service = "main"] = process.argv.slice(2);
const TIMEOUT_MS = 10_000;

function fail(msg) {
  process.stderr.write(`isolate_memory: ${msg}\n`);
  process.exit(1);
}

const timer = setTimeout(() => fail(`no answer within ${TIMEOUT_MS} ms`), TIMEOUT_MS);
const ws = new WebSocket(`ws://127.0.0.1:${port}/${service}`);
let nextId = 0;
const pending = new Map();
const events = [];
let onEvent = null;

function call(method, params = {}) {
  return new Promise((resolve, reject) => {
    const id = ++nextId;
    pending.set(id, { resolve, reject, method });
    ws.send(JSON.stringify({ id, method, params }));
  });
}

ws.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  const waiting = msg.id !== undefined && pending.get(msg.id);
  if (waiting) {
    pending.delete(msg.id);
    if (msg.error) waiting.reject(new Error(`${waiting.method}: ${msg.error.message}`));
    else waiting.resolve(msg.result);
  } else if (msg.method) {
    events.push(msg);
    if (onEvent) onEvent();
  }
};
ws.onerror = () => fail(`cannot connect to the inspector on port ${port}`);

try {
  await new Promise((resolve) => (ws.onopen = resolve));
  await call("Runtime.enable");
  // The worker's execution context is announced as an event after `Runtime.enable`.
  const context = await new Promise((resolve) => {
    const find = () => {
      const e = events.find((m) => m.method === "Runtime.executionContextCreated");
      if (e) resolve(e.params.context.id);
    };
    onEvent = find;
    find();
  });
  const heap = await call("Runtime.getHeapUsage");
  const gc = await call("Runtime.evaluate", {
    expression: "typeof gc === 'function' ? (gc(), 'collected') : 'no gc()'",
    contextId: context,
  });
  if (gc.result.value !== "collected") throw new Error("gc() is not available: run workerd with v8Flags --expose-gc");
  const live = await call("Runtime.getHeapUsage");
  const proto = await call("Runtime.evaluate", { expression: "WebAssembly.Memory.prototype", contextId: context });
  const found = await call("Runtime.queryObjects", { prototypeObjectId: proto.result.objectId });
  const sizes = await call("Runtime.callFunctionOn", {
    objectId: found.objects.objectId,
    functionDeclaration: "function () { return this.map((m) => m.buffer.byteLength); }",
    returnByValue: true,
  });
  const wasm = sizes.result.value;
  console.log(JSON.stringify({
    heap_used: heap.usedSize,
    heap_total: heap.totalSize,
    heap_live: live.usedSize,
    wasm_memory: wasm.reduce((a, b) => a + b, 0),
    wasm_memories: wasm.length,
  }));
  clearTimeout(timer);
  ws.close();
  process.exit(0);
} catch (e) {
  fail(e.message);
}
