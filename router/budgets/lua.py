"""Lua scripts of the Redis store: one script per reserve, one per settle or release.

Keys all share one hash tag (``{prefix}``), so a Redis Cluster keeps them in one slot: one
reservation must check the global, team, user and key budgets atomically, which a script can only
do within a slot (see docs/budgets.md). Layout, with ``P = {prefix}``::

    P:c:<scope>:<id>:<period>:<window>  hash  s = settled µ$, r = reserved µ$
    P:r:<request id>                    hash  st (live|expired|done), a (µ$), t, e, k (counter keys)
    P:x                                 zset  live request ids by expiry time
    P:rl:<scope>:<id>:<kind>            string  GCRA theoretical arrival time (rate limits)
    P:ledger                            stream  one entry per request, field r = JSON array row
    P:a:<local day> and P:a:total       hash  the ledger's µ$ by scope (g, t:<team>, u:<user>,
                                              k:<key>), to seed a budget added mid-period

A counter missing when a reserve, lease or status script reads it is not created there: the
script answers "seed i ..." and the client runs SEED (with the window's day sums), then again.

Times are the callers' Unix seconds (``now``), so tests can move time; a stream entry's id is
``max(row time in ms, last id's ms)``, so an id is never earlier than its row's time and a report
from ``since`` can start its scan at ``since``. The sweep reads the counter keys of expired
reservations from their hash (same slot, so this is allowed on a Cluster too).
"""

from __future__ import annotations

PRELUDE = r"""
local function fmt(x) return string.format('%d', x) end
local function ffmt(x) return string.format('%.6f', x) end
local P = string.sub(KEYS[1], 1, -3)
local function split(str)
  local t = {}
  for x in string.gmatch(str, '%S+') do t[#t + 1] = x end
  return t
end

-- Free the money of live reservations whose expiry has passed; forget their ids.
local function sweep(now, dedup_ms, limit)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ffmt(now), 'LIMIT', 0, limit)
  local freed = 0
  for _, id in ipairs(ids) do
    local rk = P .. ':r:' .. id
    local v = redis.call('HMGET', rk, 'st', 'a', 'k')
    if v[1] == 'live' then
      if v[3] then
        for ck in string.gmatch(v[3], '[^\n]+') do
          redis.call('HINCRBY', ck, 'r', fmt(-tonumber(v[2])))
        end
      end
      redis.call('DEL', rk)  -- keep only the state: a tombstone of ~100 bytes
      redis.call('HSET', rk, 'st', 'expired')
      redis.call('PEXPIRE', rk, dedup_ms)
      freed = freed + 1
    end
    redis.call('ZREM', KEYS[1], id)
  end
  return freed, #ids
end

-- Rate limits (GCRA, as router/budgets/rules.py:gcra): keys KEYS[k0+j], spec[2j-1] = per
-- minute, spec[2j] = cost. Returns the index of the spec with the longest wait (and the
-- wait), or nil and the new tats.
local function rate_check(now, k0, spec, m)
  local tats = {}
  local fail_j, fail_wait = nil, 0
  for j = 1, m do
    local per = tonumber(spec[2 * j - 1])
    local cost = tonumber(spec[2 * j])
    local tat = tonumber(redis.call('GET', KEYS[k0 + j]))
    local base = now
    if tat and tat > now then base = tat end
    local new = base + cost * 60.0 / per
    local wait
    if cost <= per then wait = new - 60.0 - now else wait = base - now end
    if wait > 0 then
      if fail_j == nil or wait > fail_wait then fail_j = j; fail_wait = wait end
    else
      tats[j] = new
    end
  end
  return fail_j, fail_wait, tats
end

local function rate_commit(now, k0, m, tats)
  for j = 1, m do
    local ms = math.ceil((tats[j] - now) * 1000) + 1000
    redis.call('SET', KEYS[k0 + j], ffmt(tats[j]), 'PX', ms)
  end
end
"""

#: KEYS: x, r:<rid>, n counter keys, m rate keys.
#: ARGV: "now ttl_s dedup_ms amount fallback(-1: none) n m", rid,
#:       "limit block_zero(0|1)" x n, "per_minute cost" x m (space-separated: fewer arguments
#:       to encode is most of the client's CPU per call).
#: Returns one string: "ok amount time expiry s1 r1 ...", "dup amount time expiry s1 r1 ...
#: \n<counter keys>", "over i used amount", "rate j wait", "final state" or "seed i ..." (those
#: counters do not exist yet: seed them, then call again).
RESERVE = (
    PRELUDE
    + r"""
local h = split(ARGV[1])
local now = tonumber(h[1])
local amount = tonumber(h[4])
local fallback = tonumber(h[5])
local n = tonumber(h[6])
local m = tonumber(h[7])
local lim = split(ARGV[3])
sweep(now, h[3], 1000)

local c = {}
local missing = {}
for i = 1, n do
  local v = redis.call('HMGET', KEYS[2 + i], 's', 'r')
  if not v[1] and not v[2] then missing[#missing + 1] = i end
  c[2 * i - 1] = tonumber(v[1]) or 0
  c[2 * i] = tonumber(v[2]) or 0
end
local function counts()
  local t = {}
  for i = 1, 2 * n do t[i] = fmt(c[i]) end
  return table.concat(t, ' ')
end

local old = redis.call('HMGET', KEYS[2], 'st', 'a', 't', 'e', 'k')
if old[1] then
  if old[1] ~= 'live' then return 'final ' .. old[1] end
  return 'dup ' .. old[2] .. ' ' .. old[3] .. ' ' .. old[4] .. ' ' .. counts() .. '\n'
         .. (old[5] or '')
end
if #missing > 0 then return 'seed ' .. table.concat(missing, ' ') end

local fj, wait, tats = rate_check(now, 2 + n, split(ARGV[4]), m)
if fj then return 'rate ' .. fj .. ' ' .. ffmt(wait) end

local function first_over(amt)
  for i = 1, n do
    local used = c[2 * i - 1] + c[2 * i]
    local limit = tonumber(lim[2 * i - 1])
    if amt == 0 then
      if lim[2 * i] == '1' and used >= limit then return i end
    elseif used + amt > limit then
      return i
    end
  end
  return nil
end

local chosen = amount
local bad = first_over(amount)
if bad and fallback >= 0 and fallback < amount then
  chosen = fallback
  bad = first_over(fallback)
end
if bad then
  return 'over ' .. bad .. ' ' .. fmt(c[2 * bad - 1] + c[2 * bad]) .. ' ' .. fmt(chosen)
end

local keys = {}
for i = 1, n do
  redis.call('HINCRBY', KEYS[2 + i], 'r', fmt(chosen))
  keys[i] = KEYS[2 + i]
end
local exp = ffmt(now + tonumber(h[2]))
redis.call('HSET', KEYS[2], 'st', 'live', 'a', fmt(chosen), 't', h[1], 'e', exp,
           'k', table.concat(keys, '\n'))
redis.call('ZADD', KEYS[1], exp, ARGV[2])
rate_commit(now, 2 + n, m, tats)
return 'ok ' .. fmt(chosen) .. ' ' .. h[1] .. ' ' .. exp .. ' ' .. counts()
"""
)

#: Settle (op "settle") or release ("release").
#: KEYS: x, r:<rid>, ledger, counter keys of the reservation (settle only), then the lease keys
#:       it was made on (leased reservations only), then the day sums the row adds to (its
#:       local day's, expiring at ``day_expiry`` (Unix s), and total).
#: ARGV: "actual dedup_ms row_time_ms op n_leases consumed n_sums day_expiry", rid, row JSON
#:       ('' for none), the day-sum fields ("\n"-separated).
#: A leased reservation held ``consumed`` (= min(actual, amount)) in each lease: it moves from
#: the lease (a, and the counter's r) to the counter's s; the rest of the lease stays.
#: Returns "ok <amount that was reserved in Redis>" or "dup", followed by " s r" of each counter
#: key given (a settle's), as they stand after it: the replica's view for outages.
_FINISH_FN = r"""
-- Settle or release one request: K = its keys, A = {head, rid, row} (see FINISH).
local function finish(K, A)
  local h = split(A[1])
  local nl = tonumber(h[5] or '0')
  local na = tonumber(h[7] or '0')
  local last = #K - nl - na
  local function counters()
    local t = {}
    for i = 4, last do
      local v = redis.call('HMGET', K[i], 's', 'r')
      t[#t + 1] = ' ' .. fmt(tonumber(v[1]) or 0) .. ' ' .. fmt(tonumber(v[2]) or 0)
    end
    return table.concat(t)
  end
  local old = redis.call('HMGET', K[2], 'st', 'a', 'k')
  if old[1] == 'done' then return 'dup' .. counters() end
  local reserved = 0
  if old[1] == 'live' then
    reserved = tonumber(old[2])
    if old[3] then
      for ck in string.gmatch(old[3], '[^\n]+') do
        redis.call('HINCRBY', ck, 'r', fmt(-reserved))
      end
    end
    redis.call('ZREM', K[1], A[2])
  end
  if h[4] == 'settle' then
    if h[1] ~= '0' then
      for i = 4, last do redis.call('HINCRBY', K[i], 's', h[1]) end
    end
    if h[6] and h[6] ~= '0' then
      for i = last + 1, last + nl do
        local v = redis.call('HMGET', K[i], 'st', 'k')
        if v[1] == 'live' then  -- an expired or returned lease no longer holds the money
          redis.call('HINCRBY', K[i], 'a', '-' .. h[6])
          redis.call('HINCRBY', v[2], 'r', '-' .. h[6])
        end
      end
    end
  end
  if na > 0 and h[1] ~= '0' then
    for i = last + nl + 1, #K do
      for f in string.gmatch(A[4], '[^\n]+') do redis.call('HINCRBY', K[i], f, h[1]) end
    end
    redis.call('EXPIREAT', K[last + nl + 1], h[8], 'NX')
  end
  if A[3] ~= '' then
    local ms = tonumber(h[3])
    local lastid = redis.call('XREVRANGE', K[3], '+', '-', 'COUNT', 1)
    if lastid[1] then
      local lms = tonumber(string.match(lastid[1][1], '^(%d+)'))
      if lms > ms then ms = lms end
    end
    redis.call('XADD', K[3], fmt(ms) .. '-*', 'r', A[3])
  end
  redis.call('DEL', K[2])  -- keep only the state: a tombstone of ~100 bytes
  redis.call('HSET', K[2], 'st', 'done')
  redis.call('PEXPIRE', K[2], h[2])
  return 'ok ' .. fmt(reserved) .. counters()
end
"""

FINISH = PRELUDE + _FINISH_FN + r"""
return finish(KEYS, ARGV)
"""

#: Settle or release several requests in one call (group commit: see ``redis_store``), each
#: exactly as FINISH would, in order. KEYS: each request's FINISH keys, one after the other.
#: ARGV: per request, its number of keys, then its four FINISH arguments.
#: Returns FINISH's result per request.
FINISH_MANY = PRELUDE + _FINISH_FN + r"""
local out = {}
local k, a = 0, 1
while a <= #ARGV do
  local nk = tonumber(ARGV[a])
  local K = {}
  for i = 1, nk do K[i] = KEYS[k + i] end
  out[#out + 1] = finish(K, {ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]})
  k = k + nk
  a = a + 5
end
return out
"""

#: Take or top up leases: a replica's slice of budgets, reserved in Redis like a long-lived
#: reservation of one counter (key P:r:L.<replica>.<n>, in the expiry set, swept like any).
#: KEYS: x, then (counter key, lease key) per budget.
#: ARGV: "now ttl_s fraction max_micro n dedup_ms", "limit need give unit" per budget.
#: ``give`` is first handed back from the lease (its unused part, when the replica must re-check
#: it against a changed limit). Then the grant per budget: fraction x free (capped at
#: max_micro, at most free), rounded down to ``need`` plus whole ``unit``s (the request's
#: amount, so that equal requests leave no unusable fragment), and at least ``need``; nothing
#: is granted unless every budget has ``need`` free. A lease key that exists but is no longer
#: live is never revived (the replica starts a new lease).
#: Returns "ok g1 s1 r1 g2 s2 r2 ..." (r after the grant), "over j used", "gone j" or "seed j"
#: (that budget's counter does not exist yet: seed it, then call again).
LEASE = (
    PRELUDE
    + r"""
local h = split(ARGV[1])
local now = tonumber(h[1])
local frac = tonumber(h[3])
local maxg = tonumber(h[4])
local n = tonumber(h[5])
local ln = split(ARGV[2])
sweep(now, h[6], 1000)
for j = 1, n do
  local st = redis.call('HGET', KEYS[2 * j + 1], 'st')
  if st and st ~= 'live' then return 'gone ' .. j end
  if redis.call('EXISTS', KEYS[2 * j]) == 0 then return 'seed ' .. j end
end
for j = 1, n do
  local give = tonumber(ln[4 * j - 1])
  if give > 0 then
    local a = tonumber(redis.call('HGET', KEYS[2 * j + 1], 'a')) or 0
    if give > a then give = a end
    redis.call('HINCRBY', KEYS[2 * j + 1], 'a', fmt(-give))
    redis.call('HINCRBY', KEYS[2 * j], 'r', fmt(-give))
  end
end
local g, sv, rv = {}, {}, {}
for j = 1, n do
  local v = redis.call('HMGET', KEYS[2 * j], 's', 'r')
  sv[j] = tonumber(v[1]) or 0
  rv[j] = tonumber(v[2]) or 0
  local free = tonumber(ln[4 * j - 3]) - sv[j] - rv[j]
  local need = tonumber(ln[4 * j - 2])
  local unit = tonumber(ln[4 * j])
  if free < need then return 'over ' .. j .. ' ' .. fmt(sv[j] + rv[j]) end
  local x = math.floor(free * frac)
  if maxg > 0 and x > maxg then x = maxg end
  if x > free then x = free end
  if x <= need or unit <= 0 then
    x = need
  else  -- whole requests only: a lease never ends with a fragment too small for one
    x = need + math.floor((x - need) / unit) * unit
  end
  g[j] = x
end
local exp = ffmt(now + tonumber(h[2]))
local out = {'ok'}
for j = 1, n do
  local ck, lk = KEYS[2 * j], KEYS[2 * j + 1]
  redis.call('HINCRBY', ck, 'r', fmt(g[j]))
  redis.call('HINCRBY', lk, 'a', fmt(g[j]))
  redis.call('HSET', lk, 'st', 'live', 'k', ck, 'e', exp)
  redis.call('ZADD', KEYS[1], exp, string.sub(lk, #P + 4))
  out[#out + 1] = fmt(g[j]) .. ' ' .. fmt(sv[j]) .. ' ' .. fmt(rv[j] + g[j])
end
return table.concat(out, ' ')
"""
)

#: Renew leases and give back what a replica does not need.
#: KEYS: x, lease keys. ARGV: "now ttl_s", "give drop(0|1)" per lease. A dropped lease (nothing
#: in flight) gives back all it holds, whatever the replica believed: a lost reply can leave
#: the replica's count below Redis', never above, and this is where the two meet again.
#: Returns per lease the amount still held, or "gone" (expired: the replica must drop it).
RENEW = (
    PRELUDE
    + r"""
local h = split(ARGV[1])
local gd = split(ARGV[2])
local exp = ffmt(tonumber(h[1]) + tonumber(h[2]))
local out = {}
for j = 1, #KEYS - 1 do
  local lk = KEYS[j + 1]
  local v = redis.call('HMGET', lk, 'st', 'a', 'k')
  if v[1] ~= 'live' then
    out[j] = 'gone'
  else
    local a = tonumber(v[2]) or 0
    local give = tonumber(gd[2 * j - 1])
    if give > a or gd[2 * j] == '1' then give = a end
    if give > 0 then
      redis.call('HINCRBY', lk, 'a', fmt(-give))
      redis.call('HINCRBY', v[3], 'r', fmt(-give))
    end
    local id = string.sub(lk, #P + 4)
    if gd[2 * j] == '1' and a - give <= 0 then
      redis.call('ZREM', KEYS[1], id)
      redis.call('DEL', lk)
      out[j] = '0'
    else
      redis.call('HSET', lk, 'e', exp)
      redis.call('ZADD', KEYS[1], exp, id)
      out[j] = fmt(a - give)
    end
  end
end
return table.concat(out, ' ')
"""
)

#: KEYS: x, counter keys. ARGV: now, dedup_ms. Returns "s1 r1 s2 r2 ..." or "seed i ..." (as
#: RESERVE).
STATUS = (
    PRELUDE
    + r"""
sweep(tonumber(ARGV[1]), ARGV[2], 1000)
local out = {}
local missing = {}
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 's', 'r')
  if not v[1] and not v[2] then missing[#missing + 1] = i - 1 end
  out[#out + 1] = fmt(tonumber(v[1]) or 0)
  out[#out + 1] = fmt(tonumber(v[2]) or 0)
end
if #missing > 0 then return 'seed ' .. table.concat(missing, ' ') end
return table.concat(out, ' ')
"""
)

#: Create a budget window's counter, seeded with its scope's spend in the window's day sums
#: (router/budgets/seed.py), unless it exists already. KEYS: the counter, the day sums (or
#: the total). ARGV: the day-sum field. Returns "s r" as the counter stands.
SEED = (
    PRELUDE
    + r"""
local v = redis.call('HMGET', KEYS[1], 's', 'r')
if v[1] or v[2] then return fmt(tonumber(v[1]) or 0) .. ' ' .. fmt(tonumber(v[2]) or 0) end
local s = 0
for i = 2, #KEYS do s = s + (tonumber(redis.call('HGET', KEYS[i], ARGV[1])) or 0) end
redis.call('HSET', KEYS[1], 's', fmt(s), 'r', '0')
return fmt(s) .. ' 0'
"""
)

#: KEYS: x. ARGV: now, dedup_ms, limit. Returns {freed, looked at}.
EXPIRE = (
    PRELUDE
    + r"""
local freed, seen = sweep(tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]))
return {freed, seen}
"""
)

#: KEYS: x, m rate keys. ARGV: now, "per_minute cost" x m. Returns "" or "j wait".
RATE = (
    PRELUDE
    + r"""
local now = tonumber(ARGV[1])
local m = #KEYS - 1
local fj, wait, tats = rate_check(now, 1, split(ARGV[2]), m)
if fj then return fj .. ' ' .. ffmt(wait) end
rate_commit(now, 1, m, tats)
return ''
"""
)
