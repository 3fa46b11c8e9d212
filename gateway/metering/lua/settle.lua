-- Settle reservations: give back what was not used, or charge what was used beyond it; a batch of them.
--
-- Per item i (1..#KEYS/2), applied in order:
-- KEYS[2i-1]  team budget     (hash: second -> tokens)
-- KEYS[2i]    provider budget (same shape)
-- ARGV[2i-1]  the second the reservation was made in
-- ARGV[2i]    delta = used - reserved. Negative refunds into the reservation's
--          own bucket (never below zero, and only while that bucket is still
--          in the window); positive is charged to the current second, so
--          debt always counts against the next minute.
-- Returns, per item, the team's tokens used in the window after settling it, as a string.
local now_parts = redis.call('TIME')
local second = tonumber(now_parts[1])

local function apply(key, reserved_in, delta)
  if delta > 0 then
    redis.call('HINCRBY', key, second, delta)
  elseif reserved_in >= second - 60 then
    local current = tonumber(redis.call('HGET', key, reserved_in) or '0')
    local refunded = math.max(0, current + delta)
    redis.call('HSET', key, reserved_in, refunded)
  end
  redis.call('EXPIRE', key, 120)
end

local function used(key)
  local total = 0
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    if tonumber(flat[i]) >= second - 60 then
      total = total + tonumber(flat[i + 1])
    end
  end
  return tostring(total)
end

local reply = {}
for i = 1, #KEYS / 2 do
  local reserved_in, delta = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  apply(KEYS[2 * i - 1], reserved_in, delta)
  apply(KEYS[2 * i], reserved_in, delta)
  reply[i] = used(KEYS[2 * i - 1])
end
return reply
