//! The Lua scripts sent with `EVAL` where one round trip needs atomic logic. Every key a script
//! builds itself is a prefix from [`super::keys::KeySchema`] (passed in ARGV) plus a value it
//! read, so the schema stays in one place.

/// The per-request session check: read the session, reject if past its hard end, renew its TTL
/// (sliding expiry, capped at the hard end), read the subject's permissions and count the
/// request for the rate limit.
///
/// KEYS[1] session key, KEYS[2] session rate key (used when ARGV[5] = `session`).
/// ARGV: 1 now, 2 sliding secs (0 off), 3 max lifetime secs (0 none), 4 perms key prefix,
/// 5 rate mode (`` off, `sub`, `session`), 6 subject rate key prefix, 7 rate window secs.
/// Returns `{0}` not found/expired, `{2}` unreadable record, or
/// `{1, session_json, permissions, count (-1 = no rate limit), renewed_ttl (0 = none)}`.
pub const SESSION_CHECK: &str = r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local ok, s = pcall(cjson.decode, raw)
if not ok or type(s) ~= 'table' or type(s.sub) ~= 'string' or type(s.created) ~= 'number' or type(s.expires) ~= 'number' then
  return {2}
end
local now = tonumber(ARGV[1])
local hard_end = s.expires
local maxlife = tonumber(ARGV[3])
if maxlife > 0 and s.created + maxlife < hard_end then hard_end = s.created + maxlife end
if now >= hard_end then return {0} end
local renewed = 0
local sliding = tonumber(ARGV[2])
if sliding > 0 then
  renewed = math.floor(hard_end - now)
  if sliding < renewed then renewed = sliding end
  if renewed < 1 then renewed = 1 end
  redis.call('EXPIRE', KEYS[1], renewed)
end
local perms = redis.call('SMEMBERS', ARGV[4] .. s.sub)
local count = -1
if ARGV[5] ~= '' then
  local rk = KEYS[2]
  if ARGV[5] == 'sub' then rk = ARGV[6] .. s.sub end
  count = redis.call('INCR', rk)
  if count == 1 then redis.call('EXPIRE', rk, ARGV[7]) end
end
return {1, raw, perms, count, renewed}
"#;

/// Creates a session, enforcing the per-subject limit. Sessions that expired are first dropped
/// from the subject's set. The score is the creation time, nudged by 1 ms past the newest
/// existing score so sessions created in the same second keep their order (oldest first).
///
/// KEYS[1] session key, KEYS[2] subject's sessions set. ARGV: 1 session JSON, 2 TTL secs,
/// 3 creation time (score), 4 token hash, 5 max sessions (0 = unlimited), 6 policy
/// (`evict_oldest` | `refuse`), 7 session key prefix.
/// Returns `{1, evicted}` or `{-1, live}` when refused.
pub const SESSION_CREATE: &str = r#"
local members = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local live = {}
local score = tonumber(ARGV[3])
for i = 1, #members, 2 do
  local h = members[i]
  local sc = tonumber(members[i + 1])
  if sc >= score then score = sc + 0.001 end
  if redis.call('EXISTS', ARGV[7] .. h) == 1 then table.insert(live, h) else redis.call('ZREM', KEYS[2], h) end
end
local max = tonumber(ARGV[5])
local evicted = 0
if max > 0 and #live >= max then
  if ARGV[6] == 'refuse' then return {-1, #live} end
  for i = 1, #live - max + 1 do
    redis.call('DEL', ARGV[7] .. live[i])
    redis.call('ZREM', KEYS[2], live[i])
    evicted = evicted + 1
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], score, ARGV[4])
return {1, evicted}
"#;

/// Lists a subject's live sessions (and drops expired ones from its set).
///
/// KEYS[1] subject's sessions set. ARGV: 1 session key prefix.
/// Returns a flat array `{hash, score, session_json, ttl, …}`, oldest first.
pub const SESSION_LIST: &str = r#"
local m = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #m, 2 do
  local k = ARGV[1] .. m[i]
  local raw = redis.call('GET', k)
  if raw then
    table.insert(out, m[i]); table.insert(out, m[i + 1]); table.insert(out, raw); table.insert(out, redis.call('TTL', k))
  else
    redis.call('ZREM', KEYS[1], m[i])
  end
end
return out
"#;

/// Deletes a subject's sessions whose `device` equals ARGV[2].
///
/// KEYS[1] subject's sessions set. ARGV: 1 session key prefix, 2 device. Returns the count.
pub const SESSION_KICK_DEVICE: &str = r#"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for _, h in ipairs(members) do
  local k = ARGV[1] .. h
  local raw = redis.call('GET', k)
  if not raw then
    redis.call('ZREM', KEYS[1], h)
  else
    local ok, s = pcall(cjson.decode, raw)
    if ok and type(s) == 'table' and s.device == ARGV[2] then
      redis.call('DEL', k)
      redis.call('ZREM', KEYS[1], h)
      n = n + 1
    end
  end
end
return n
"#;

/// Deletes all of a subject's sessions. KEYS[1] subject's sessions set. ARGV: 1 session key
/// prefix. Returns how many live sessions were deleted.
pub const SESSION_KICK_ALL: &str = r#"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for _, h in ipairs(members) do n = n + redis.call('DEL', ARGV[1] .. h) end
redis.call('DEL', KEYS[1])
return n
"#;

/// Replaces a subject's permission set. KEYS[1] perms key; ARGV the permissions. Returns the
/// number set.
pub const PERMS_SET: &str = r#"
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('SADD', KEYS[1], unpack(ARGV)) end
return #ARGV
"#;
