-- Settle a reservation: give back what was not used, or charge what was used beyond it.
--
-- KEYS[1]  team bucket     (hash: tokens, ts)
-- KEYS[2]  provider bucket (hash: tokens, ts)
-- ARGV[1]  team capacity (tokens per minute)
-- ARGV[2]  provider capacity (tokens per minute)
-- ARGV[3]  delta: reserved - used. Positive refunds (never above capacity),
--          negative records debt (never below -capacity: one minute of debt at most).
-- Returns the team level after settling, as a string.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000

local function settle(key, capacity, delta)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(state[1]), tonumber(state[2])
  local current = capacity
  if tokens ~= nil and ts ~= nil then
    current = math.min(capacity, tokens + math.max(0, now - ts) * capacity / 60)
  end
  local settled = math.max(-capacity, math.min(capacity, current + delta))
  redis.call('HSET', key, 'tokens', tostring(settled), 'ts', tostring(now))
  redis.call('EXPIRE', key, 180)
  return settled
end

local delta = tonumber(ARGV[3])
local team = settle(KEYS[1], tonumber(ARGV[1]), delta)
settle(KEYS[2], tonumber(ARGV[2]), delta)
return tostring(team)
