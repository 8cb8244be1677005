// Fallback origin for the benchmark when the project's `test-origin` binary is not built:
// answers every request with a small JSON body. Listens on 127.0.0.1 only.
// Usage: node origin.mjs [port]   (port 0, the default, picks a free one)
// Prints `LISTENING http://127.0.0.1:PORT` once ready, like test-origin.
import http from "node:http";

const body = JSON.stringify({ ok: true, service: "bench-origin" });
const server = http.createServer((req, res) => {
  // Drain any request body before answering so keep-alive connections stay usable.
  req.resume();
  req.on("end", () => {
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  });
});
server.keepAliveTimeout = 30_000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`LISTENING http://127.0.0.1:${server.address().port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
