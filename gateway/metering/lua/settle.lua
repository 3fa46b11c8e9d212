-- Settle a reservation: give back what was not used, or charge what was used beyond it.
--
-- KEYS[1]  team budget     (hash: second -> tokens)
-- KEYS[2]  provider budget (same shape)
-- ARGV[1]  the second the reservation was made in
-- ARGV[2]  delta = used - reserved. Negative refunds into the reservation's
--          own bucket (never below zero, and only while that bucket is still
--          in the window); positive is charged to the current second, so
--          debt always counts against the next minute.
-- Returns the team's tokens used in the window after settling, as a string.
local now_parts = redis.call('TIME')
local second = tonumber(now_parts[1])
local reserved_in, delta = tonumber(ARGV[1]), tonumber(ARGV[2])

local function apply(key)
  if delta > 0 then
    redis.call('HINCRBY', key, second, delta)
  elseif reserved_in >= second - 60 then
    local current = tonumber(redis.call('HGET', key, reserved_in) or '0')
    local refunded = math.max(0, current + delta)
    redis.call('HSET', key, reserved_in, refunded)
  end
  redis.call('EXPIRE', key, 120)
end

apply(KEYS[1])
apply(KEYS[2])
local total = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if tonumber(flat[i]) >= second - 60 then
    total = total + tonumber(flat[i + 1])
  end
end
return tostring(total)
