-- A provider answered 429: nobody sends to it until the cool-down passes.
--
-- KEYS[1]  the provider's breaker (see admit.lua)
-- ARGV[1]  seconds to cool down (from Retry-After or the reset headers)
-- ARGV[2]  the longest cool-down accepted, whatever the provider says
-- Keeps the later of the current and the new cool-down. Returns the seconds left.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wanted = now + math.min(math.max(0, tonumber(ARGV[1])), tonumber(ARGV[2]))
local current = tonumber(redis.call('HGET', KEYS[1], 'cool_until') or '0')
local cool_until = math.max(current, wanted)
redis.call('HSET', KEYS[1], 'cool_until', tostring(cool_until))
redis.call('EXPIRE', KEYS[1], 86400)
return tostring(cool_until - now)
