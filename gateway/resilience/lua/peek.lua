-- Read a provider's breaker without changing it.
--
-- KEYS[1]  the provider's breaker (see admit.lua)
-- Returns {state, seconds_until_it_may_admit, trips, cooldown_seconds_left} as strings.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local f = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'trips', 'cool_until')
local state = f[1] or 'closed'
local open_until, cool_until = tonumber(f[2] or '0'), tonumber(f[4] or '0')
local wait = 0
if state == 'open' then
  if now >= open_until then state = 'half_open' else wait = open_until - now end
end
return {state, tostring(wait), f[3] or '0', tostring(math.max(0, cool_until - now))}
