-- Record outcomes of requests to this provider and move its breaker.
--
-- KEYS[1]  the provider's breaker (see admit.lua)
-- ARGV[1]  successes to add        ARGV[2]  failures to add
-- ARGV[3]  1 when this is a half-open probe's outcome
-- ARGV[4]  failure_ratio           ARGV[5]  min_requests
-- ARGV[6]  window_seconds          ARGV[7]  open_seconds
-- ARGV[8]  max_open_seconds
--
-- closed: counts go into one-second buckets; over window_seconds, at least
--   min_requests outcomes with failures/outcomes >= failure_ratio opens it.
-- half_open: a probe success closes it; a probe failure opens it again with
--   one more trip, for open_seconds * 2^(trips-1) capped at max_open_seconds.
-- Trips reset once the breaker stayed closed for a whole window.
-- Returns {state, seconds_until_it_may_admit, trips} as strings.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local second = math.floor(now)
local key = KEYS[1]
local ok, failed, probe = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ratio, min_requests, window = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local open_seconds, max_open = tonumber(ARGV[7]), tonumber(ARGV[8])
local f = redis.call('HMGET', key, 'state', 'open_until', 'trips', 'probes', 'closed_since')
local state = f[1] or 'closed'
local open_until, trips = tonumber(f[2] or '0'), tonumber(f[3] or '0')
local probes, closed_since = tonumber(f[4] or '0'), tonumber(f[5] or '0')

local function clear_window()
  local flat = redis.call('HKEYS', key)
  local stale = {}
  for _, field in ipairs(flat) do
    if string.sub(field, 1, 2) == 'o:' or string.sub(field, 1, 2) == 'f:' then
      stale[#stale + 1] = field
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
end

local function open()
  trips = trips + 1
  open_until = now + math.min(max_open, open_seconds * 2 ^ (trips - 1))
  state = 'open'
  clear_window()
  redis.call('HSET', key, 'state', 'open', 'open_until', tostring(open_until), 'trips', trips, 'probes', 0)
end

if state == 'open' and now >= open_until then
  state = 'half_open'
end
if state == 'half_open' then
  if probe == 1 then
    probes = math.max(0, probes - 1)
    if failed > 0 then
      open()
    elseif ok > 0 then
      state = 'closed'
      clear_window()
      redis.call('HSET', key, 'state', 'closed', 'probes', 0, 'closed_since', tostring(now))
    else
      redis.call('HSET', key, 'probes', probes)
    end
  end
elseif state == 'closed' then
  if ok > 0 then redis.call('HINCRBY', key, 'o:' .. second, ok) end
  if failed > 0 then redis.call('HINCRBY', key, 'f:' .. second, failed) end
  local flat = redis.call('HGETALL', key)
  local total, failures, stale = 0, 0, {}
  for i = 1, #flat, 2 do
    local kind, at = string.sub(flat[i], 1, 2), tonumber(string.sub(flat[i], 3))
    if kind == 'o:' or kind == 'f:' then
      if at <= second - window then
        stale[#stale + 1] = flat[i]
      else
        total = total + tonumber(flat[i + 1])
        if kind == 'f:' then failures = failures + tonumber(flat[i + 1]) end
      end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  if trips > 0 and closed_since > 0 and now - closed_since >= window then
    trips = 0
    redis.call('HSET', key, 'trips', 0)
  end
  if total >= min_requests and failures / total >= ratio then
    open()
  end
end
redis.call('EXPIRE', key, 86400)
local wait = 0
if state == 'open' then wait = open_until - now end
return {state, tostring(wait), tostring(trips)}
