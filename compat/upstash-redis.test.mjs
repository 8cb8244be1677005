// Compatibility proof: the official @upstash/redis client against our
// upstash-rest-server in front of a real redis-server.
//
// Run from the repository root:  node --test compat/
// The server binary comes from $UPSTASH_SERVER_BIN, default target/debug/upstash-rest-server
// (build it with `cargo build -p edge-auth-tools --bin upstash-rest-server`).
// Missing redis-server or binary FAILS the run (never skips).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "@upstash/redis";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const serverBin = path.resolve(
  repoRoot,
  process.env.UPSTASH_SERVER_BIN ?? "target/debug/upstash-rest-server",
);
const TOKEN = "compat-token-7f3a";

const children = [];
// Last resort if the runner dies before after(): never leave processes behind.
process.on("exit", () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, child, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited early (code ${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => { sock.destroy(); resolve(true); });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(20);
  }
  throw new Error(`redis-server did not listen on port ${port} within ${ms} ms`);
}

function waitForListeningLine(child, ms) {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`server printed no LISTENING line within ${ms} ms`)), ms);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      buffer += chunk;
      const newline = buffer.indexOf("\n");
      if (newline >= 0) {
        clearTimeout(timer);
        const line = buffer.slice(0, newline);
        const match = /^LISTENING (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (match) resolve(match[1]);
        else reject(new Error(`unexpected first stdout line: ${JSON.stringify(line)}`));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}) before listening`));
    });
  });
}

function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

let redisProc;
let serverProc;
let url;
let redis;

/** Why this machine cannot run the suite, or null. */
function missingPrerequisite() {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    return (
      `redis-server is required and was not found or failed (${probe.error?.message ?? probe.stderr}); ` +
      "install it with: apt-get install -y redis-server"
    );
  }
  if (!existsSync(serverBin)) {
    return (
      `server binary not found at ${serverBin}; build it with ` +
      "`cargo build -p edge-auth-tools --bin upstash-rest-server` or set UPSTASH_SERVER_BIN"
    );
  }
  return null;
}

// A test of its own so that a missing prerequisite shows up as a failure, not only as cancellations.
test("prerequisites: redis-server and the server binary are present", () => {
  const missing = missingPrerequisite();
  assert.equal(missing, null, missing ?? "");
});

async function startStack() {
  const missing = missingPrerequisite();
  if (missing) throw new Error(missing);
  const redisPort = await freePort();
  redisProc = spawn(
    "redis-server",
    ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", String(redisPort)],
    { stdio: "ignore" },
  );
  children.push(redisProc);
  await waitForPort(redisPort, redisProc, 10_000);

  serverProc = spawn(
    serverBin,
    ["--listen", "127.0.0.1:0", "--redis-url", `redis://127.0.0.1:${redisPort}`, "--admin"],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, UPSTASH_REST_TOKEN: TOKEN } },
  );
  children.push(serverProc);
  url = await waitForListeningLine(serverProc, 10_000);
  // The client exactly as applications use it: base64 response encoding (the default).
  redis = new Redis({ url, token: TOKEN, enableTelemetry: false });
}

async function stopStack() {
  if (serverProc) {
    serverProc.kill("SIGTERM");
    const { code } = await exited(serverProc);
    assert.equal(code, 0, "server must exit 0 on SIGTERM");
  }
  if (redisProc) {
    redisProc.kill("SIGKILL");
    await exited(redisProc);
  }
}

async function admin(pathname, body) {
  const res = await fetch(url + pathname, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  return res.json();
}

describe("@upstash/redis against upstash-rest-server", () => {
  before(startStack);
  after(stopStack);

  test("strings round-trip, including unicode and the literal OK", async () => {
    assert.equal(await redis.set("s:1", "hello"), "OK");
    assert.equal(await redis.get("s:1"), "hello");
    await redis.set("s:uni", "héllo ✓ 日本");
    assert.equal(await redis.get("s:uni"), "héllo ✓ 日本");
    await redis.set("s:ok", "OK");
    assert.equal(await redis.get("s:ok"), "OK");
    assert.equal(await redis.append("s:1", " world"), 11);
    assert.equal(await redis.strlen("s:1"), 11);
    assert.equal(await redis.getrange("s:1", 0, 4), "hello");
    assert.equal(await redis.ping(), "PONG");
    assert.equal(await redis.echo("echo me"), "echo me");
  });

  test("JSON values are serialised and come back as objects", async () => {
    const value = { user: "alice", roles: ["admin", "dev"], n: 3, nested: { ok: true } };
    await redis.set("j:1", value);
    assert.deepEqual(await redis.get("j:1"), value);
    await redis.set("j:arr", [1, "two", null]);
    assert.deepEqual(await redis.get("j:arr"), [1, "two", null]);
    await redis.hset("j:h", { name: "bob", meta: { a: 1 }, age: 42 });
    assert.deepEqual(await redis.hgetall("j:h"), { name: "bob", meta: { a: 1 }, age: 42 });
    assert.equal(await redis.hget("j:h", "name"), "bob");
  });

  test("numbers", async () => {
    await redis.set("n:1", 42);
    assert.equal(await redis.get("n:1"), 42);
    assert.equal(await redis.incr("n:1"), 43);
    assert.equal(await redis.incrby("n:1", 7), 50);
    assert.equal(await redis.decr("n:1"), 49);
    assert.equal(Number(await redis.incrbyfloat("n:f", 1.5)), 1.5);
    assert.equal(await redis.exists("n:1", "n:f", "n:none"), 2);
  });

  test("nil becomes null", async () => {
    assert.equal(await redis.get("nil:missing"), null);
    assert.equal(await redis.hget("nil:hash", "f"), null);
    await redis.set("nil:a", "x");
    assert.deepEqual(await redis.mget("nil:a", "nil:missing"), ["x", null]);
    assert.equal(await redis.hgetall("nil:nohash"), null);
  });

  test("lists, sets, sorted sets and scans (nested arrays)", async () => {
    assert.equal(await redis.rpush("c:list", "a", "b", "c"), 3);
    assert.deepEqual(await redis.lrange("c:list", 0, -1), ["a", "b", "c"]);
    await redis.sadd("c:set", "x", "y");
    assert.deepEqual((await redis.smembers("c:set")).sort(), ["x", "y"]);
    await redis.zadd("c:z", { score: 1, member: "one" }, { score: 2, member: "two" });
    assert.deepEqual(await redis.zrange("c:z", 0, -1, { withScores: true }), ["one", 1, "two", 2]);
    const [cursor, keys] = await redis.scan(0, { match: "c:*", count: 1000 });
    assert.equal(String(cursor), "0");
    assert.deepEqual([...keys].sort(), ["c:list", "c:set", "c:z"]);
  });

  test("pipeline: one HTTP request, results in order, errors in place", async () => {
    await admin("/__stats/reset", {});
    const p = redis.pipeline();
    p.set("p:1", "v");
    p.incr("p:n");
    p.get("p:1");
    p.get("p:missing");
    assert.deepEqual(await p.exec(), ["OK", 1, "v", null]);
    assert.deepEqual(await admin("/__stats"), { requests: 1, commands: 4 });

    const failing = redis.pipeline();
    failing.incr("p:1");
    failing.incr("p:n");
    await assert.rejects(failing.exec(), /ERR value is not an integer/);
    // Not atomic: the second command ran anyway.
    assert.equal(await redis.get("p:n"), 2);

    const kept = redis.pipeline();
    kept.incr("p:1");
    kept.incr("p:n");
    const results = await kept.exec({ keepErrors: true });
    assert.match(results[0].error, /ERR value is not an integer/);
    assert.equal(results[1].result, 3);
  });

  test("multi: a transaction", async () => {
    const tx = redis.multi();
    tx.set("t:1", 10);
    tx.incrby("t:1", 5);
    tx.get("t:1");
    tx.del("t:gone");
    assert.deepEqual(await tx.exec(), ["OK", 15, 15, 0]);
  });

  test("multi: a command rejected while queueing discards the whole transaction", async () => {
    // HSET with no field is refused by Redis at queue time (wrong arity), so EXEC runs nothing.
    const tx = redis.multi();
    tx.set("t:never", 1);
    tx.hset("t:never-hash", {});
    await assert.rejects(tx.exec(), /ERR wrong number of arguments/);
    assert.equal(await redis.exists("t:never"), 0);
  });

  test("multi: a runtime error inside the transaction rejects, the other commands ran", async () => {
    await redis.set("t:s", "text");
    const tx = redis.multi();
    tx.incr("t:s");
    tx.set("t:after", "yes");
    await assert.rejects(tx.exec(), /ERR value is not an integer/);
    assert.equal(await redis.get("t:after"), "yes");
  });

  test("expiry: SET EX / PX, TTL, EXPIRE, PERSIST, and keys really expire", async () => {
    await redis.set("e:1", "v", { ex: 100 });
    const ttl = await redis.ttl("e:1");
    assert.ok(ttl > 95 && ttl <= 100, `ttl ${ttl}`);
    await redis.set("e:2", "v");
    assert.equal(await redis.ttl("e:2"), -1);
    assert.equal(await redis.expire("e:2", 50), 1);
    const ttl2 = await redis.ttl("e:2");
    assert.ok(ttl2 > 45 && ttl2 <= 50, `ttl ${ttl2}`);
    assert.equal(await redis.persist("e:2"), 1);
    assert.equal(await redis.ttl("e:2"), -1);
    assert.equal(await redis.ttl("e:none"), -2);
    await redis.set("e:short", "v", { px: 100 });
    const pttl = await redis.pttl("e:short");
    assert.ok(pttl > 0 && pttl <= 100, `pttl ${pttl}`);
    await sleep(250);
    assert.equal(await redis.get("e:short"), null);
    assert.equal(await redis.set("e:nx", "a", { nx: true, ex: 60 }), "OK");
    assert.equal(await redis.set("e:nx", "b", { nx: true, ex: 60 }), null);
  });

  test("errors reject: INCR on a non-number, wrong type", async () => {
    await redis.set("err:s", "text");
    await assert.rejects(redis.incr("err:s"), (e) => {
      assert.equal(e.name, "UpstashError");
      assert.match(e.message, /ERR value is not an integer or out of range/);
      return true;
    });
    await assert.rejects(redis.lpush("err:s", "x"), /WRONGTYPE/);
  });

  test("a wrong token rejects", async () => {
    const intruder = new Redis({ url, token: "wrong-token", enableTelemetry: false, retry: false });
    await assert.rejects(intruder.get("s:1"), /Unauthorized/);
  });

  test("plain (non-base64) response encoding works too", async () => {
    const plain = new Redis({ url, token: TOKEN, responseEncoding: false, enableTelemetry: false });
    await plain.set("plain:1", { a: "é" });
    assert.deepEqual(await plain.get("plain:1"), { a: "é" });
    assert.deepEqual(await plain.lrange("c:list", 0, -1), ["a", "b", "c"]);
    const tx = plain.multi();
    tx.incr("plain:n");
    tx.get("plain:n");
    assert.deepEqual(await tx.exec(), [1, 1]);
  });
});
