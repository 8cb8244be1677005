-- wrk script for the edge-auth benchmark.
-- Usage: wrk -t1 -c8 -d10s --latency -s tokens.lua URL -- <token-file> [start-index] [vary]
-- Sends `Authorization: Bearer <token>` cycling through the file's lines (one token per line;
-- a one-line file is the "hot token" case), tallies every response status, and prints one
-- machine-readable line at the end:
--   BENCH requests=N duration_us=N p50_us=N p99_us=N mean_us=N max_us=N wraps=N
--         err_connect=N err_read=N err_write=N err_timeout=N statuses=200:N,401:N
-- Meant for -t1: with more threads each thread cycles on its own.
-- With `vary` as the third argument every request gets its own query (`?r=<n>`), so that no two
-- requests have the same head (edge-auth then never replays a decision).

local tokens, n, i = {}, 0, 0
local vary, sent = false, 0
local threads = {}
statuses = {}
wraps = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  if path == nil then error("usage: -- <token-file> [start-index]") end
  for line in io.lines(path) do
    if #line > 0 then
      n = n + 1
      tokens[n] = "Bearer " .. line
    end
  end
  if n == 0 then error("no tokens in " .. path) end
  i = (tonumber(args[2] or "0") or 0) % n
  vary = args[3] == "vary"
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wraps = wraps + 1
  end
  local path = nil
  if vary then
    sent = sent + 1
    path = wrk.path .. "?r=" .. sent
  end
  return wrk.format("GET", path, { ["Authorization"] = tokens[i] })
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local parts, w = {}, 0
  for _, t in ipairs(threads) do
    local st = t:get("statuses") or {}
    for code, count in pairs(st) do
      parts[code] = (parts[code] or 0) + count
    end
    w = w + (t:get("wraps") or 0)
  end
  local list = {}
  for code, count in pairs(parts) do table.insert(list, code .. ":" .. count) end
  table.sort(list)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%d max_us=%d wraps=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d statuses=%s\n",
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
    math.floor(latency.mean), latency.max, w,
    e.connect, e.read, e.write, e.timeout, table.concat(list, ",")))
end
