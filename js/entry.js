// The worker's entry module, bundled by worker-build in place of its own shim (see
// scripts/esbuild-entry). worker-build 0.8's shim exports a `WorkerEntrypoint` class behind a
// `Proxy`: the runtime then constructs an instance per request, and every property read goes
// through a trap that wraps the method in a new `Proxy` — measured at 12-15 µs CPU per request
// (README, "Measured"). This exports a plain handler object instead and keeps what the shim's
// wrapping is for: after a wasm trap (a `WebAssembly.RuntimeError`, e.g. a panic under
// panic=abort) the next request runs on a fresh wasm instance rather than on broken state.
//
// Before entering wasm it reads the request once (`readRequest`) and tries to answer it with a
// decision the core already made for the same request head in the same second (`replay`, see
// js/runtime.js and `Decision::replayable` in src/gateway.rs). scripts/esbuild-entry points the
// runtime import at the copy wasm-bindgen bundles, so both sides share one module.
import * as wasm from "./index.js";
import { readRequest, replay, forgetDecisions } from "./runtime.js";

const initState = wasm.__worker_init_state();

function reinitializeIfBroken() {
  if (initState.criticalError) {
    console.log("Reinitializing Wasm application");
    wasm.__wbg_reset_state();
    forgetDecisions();
    initState.criticalError = false;
    initState.instanceId++;
  }
}

function noteCritical(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    console.error("Critical", e);
    initState.criticalError = true;
  }
}

// A trap inside a promise callback (after an await) surfaces here.
addEventListener("error", (e) => noteCritical(e.error));

export default {
  fetch(request, env, ctx) {
    reinitializeIfBroken();
    const started = Date.now();
    const [head, rid] = readRequest(request);
    const replayed = replay(request, head, rid, started);
    if (replayed !== undefined) return replayed;
    try {
      return wasm.fetch(request, env, ctx, head, rid, started);
    } catch (e) {
      noteCritical(e);
      throw e;
    }
  },
};
