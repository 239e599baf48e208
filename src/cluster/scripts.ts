// The Lua scripts tollgate runs on Redis. Each runs atomically (Redis runs one script at a
// time), so a decision made from what a script read is still true when it writes.

/**
 * One strict rate-limit decision: every limit of the request at once, in Redis time.
 *
 * KEYS[i]  the counter of limit i for this client (all in one hash slot: the client key is
 *          the hash tag, so the script runs on Redis Cluster too)
 * ARGV     4 per limit: algorithm (1 fixed window, 2 sliding window, 3 gcra), limit,
 *          window ms, burst (gcra)
 * Returns  {1, remaining_1, reset_ms_1, remaining_2, reset_ms_2, ...} when every limit admits
 *          (each counter then counts the request), or {0, i, retry_after_ms, reset_ms} for
 *          the first limit that rejects (nothing is written: a rejected request consumes no
 *          quota anywhere).
 *
 * The clock is Redis's TIME, never the caller's: instances with skewed clocks count in the
 * same windows. The algorithms are the WASM counters' (wasm/assembly/rate-limit.ts), on
 * whole milliseconds for the window ones, microseconds for GCRA (WASM: 2^-22 ms):
 *   fixed window    hash {w = window number, c = count}
 *   sliding window  hash {w = current window number, c = its count, p = the previous
 *                   window's}; estimate p * (W - elapsed) / W + c, admitted while below limit
 *   gcra            string: the TAT in microseconds; TAT' = max(TAT, now) + T, admitted if
 *                   TAT' - now <= burst * T
 * Keys expire when they mean nothing any more (the end of the window, or of the next one for
 * the sliding window, or the TAT).
 */
/** The decision of one request, as a Lua function: its keys after KEYS[k0], its 4 ARGV per key after ARGV[a0]. */
const DECIDE = `
local function decide(k0, n, a0, nowUs)
local now = math.floor(nowUs / 1000)
local plan = {}
for i = 1, n do
  local alg = tonumber(ARGV[a0 + 4 * i - 3])
  local limit = tonumber(ARGV[a0 + 4 * i - 2])
  local W = tonumber(ARGV[a0 + 4 * i - 1])
  local burst = tonumber(ARGV[a0 + 4 * i])
  local key = KEYS[k0 + i]
  if alg == 1 then
    local w = math.floor(now / W)
    local v = redis.call('HMGET', key, 'w', 'c')
    local c = 0
    if tonumber(v[1]) == w then c = tonumber(v[2]) end
    local reset = (w + 1) * W - now
    if c >= limit then return {0, i, reset, reset} end
    plan[i] = {alg, w, c + 1, limit - c - 1, reset, 0}
  elseif alg == 2 then
    local w = math.floor(now / W)
    local elapsed = now - w * W
    local v = redis.call('HMGET', key, 'w', 'c', 'p')
    local sw = tonumber(v[1])
    local cur, prev = 0, 0
    if sw == w then
      cur = tonumber(v[2]); prev = tonumber(v[3]) or 0
    elseif sw == w - 1 then
      prev = tonumber(v[2])
    end
    local weighted = prev * (W - elapsed)
    local cap = limit * W
    local windowReset = (w + 1) * W - now
    if weighted + cur * W >= cap then
      local target
      if cur < limit then
        target = w * W + math.floor((prev - (limit - cur)) * W / prev) + 1
      else
        target = (w + 1) * W + math.floor((cur - limit) * W / cur) + 1
      end
      local retry = target - now
      return {0, i, retry, math.max(retry, windowReset)}
    end
    local room = cap - weighted - (cur + 1) * W
    local remaining = 0
    if room > 0 then remaining = math.ceil(room / W) end
    plan[i] = {alg, w, cur + 1, remaining, windowReset, prev}
  else
    local T = math.ceil(W * 1000 / limit)
    local tau = T * burst
    local tat = tonumber(redis.call('GET', key)) or 0
    if tat < nowUs then tat = nowUs end
    local nxt = tat + T
    if nxt - nowUs > tau then
      local retry = math.ceil((nxt - tau - nowUs) / 1000)
      return {0, i, retry, retry + math.ceil((tau - T) / 1000)}
    end
    plan[i] = {alg, nxt, 0, math.floor((tau - (nxt - nowUs)) / T), math.ceil((nxt - nowUs) / 1000), 0}
  end
end
local out = {1}
for i = 1, n do
  local p = plan[i]
  local key = KEYS[k0 + i]
  local W = tonumber(ARGV[a0 + 4 * i - 1])
  if p[1] == 1 then
    redis.call('HSET', key, 'w', p[2], 'c', p[3])
    redis.call('PEXPIRE', key, p[5] + 1000)
  elseif p[1] == 2 then
    redis.call('HSET', key, 'w', p[2], 'c', p[3], 'p', p[6])
    redis.call('PEXPIRE', key, p[5] + W + 1000)
  else
    redis.call('SET', key, string.format('%.0f', p[2]), 'PX', p[5] + 1000)
  end
  out[2 * i] = p[4]
  out[2 * i + 1] = p[5]
end
return out
end
local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
`

export const STRICT_LIMIT = DECIDE + `return decide(0, #KEYS, 0, nowUs)
`

/**
 * Several requests' strict decisions in one script run: what one worker thread collected in
 * one turn of its event loop (worker-link.ts). Each request is decided as STRICT_LIMIT
 * decides it, one after the other, in the order given, so each sees the counts of the ones
 * before it: exactly what the same requests as separate scripts would get (Redis runs one
 * script at a time either way). All share one Redis TIME, read once.
 *
 * KEYS    every request's keys, one after the other
 * ARGV    for each request: its key count n, then its 4 * n limit arguments
 * Returns one STRICT_LIMIT reply per request, in order.
 */
export const STRICT_LIMIT_BATCH = DECIDE + `local replies = {}
local k0, a = 0, 1
local j = 0
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  j = j + 1
  replies[j] = decide(k0, n, a, nowUs)
  k0 = k0 + n
  a = a + 1 + 4 * n
end
return replies
`

/**
 * fast mode: one instance's admits of one counter since its last sync.
 * KEYS[1] the fleet counter (a hash: instance id -> admits it reported)
 * ARGV    instance id, admits to add, ttl ms
 * Returns the admits every other instance reported (their sum), so the caller can count the
 * ones it has not seen yet into its local counter.
 */
export const FAST_SYNC = `
if tonumber(ARGV[2]) > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local all = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then others = others + tonumber(all[i + 1]) end
end
return others
`

/**
 * Store a policy version and announce it.
 * KEYS[1] the version counter, KEYS[2] the versions hash (number -> JSON)
 * ARGV    the version's JSON without its number, the channel, how many versions to keep,
 *         the origin instance id
 * Returns the new version number.
 */
export const POLICY_PUBLISH = `
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], v, ARGV[1])
local keep = tonumber(ARGV[3])
if v > keep then redis.call('HDEL', KEYS[2], v - keep) end
redis.call('PUBLISH', ARGV[2], cjson.encode({version = v, origin = ARGV[4]}))
return v
`
