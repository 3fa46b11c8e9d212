-- Reserve tokens in a team bucket and a provider bucket, both or neither.
--
-- KEYS[1]  team bucket     (hash: tokens, ts)
-- KEYS[2]  provider bucket (hash: tokens, ts)
-- ARGV[1]  team capacity (tokens per minute)
-- ARGV[2]  provider capacity (tokens per minute)
-- ARGV[3]  tokens to reserve
--
-- Token bucket: capacity = one minute's budget, refilled continuously at
-- capacity/60 per second (Redis server time, so every instance agrees).
-- Returns {status, team_level, provider_level, retry_after} as strings:
-- status 0 reserved, 1 team short, 2 provider short. retry_after is the
-- seconds until the short bucket holds the amount.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000

local function level(key, capacity)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or ts == nil then
    return capacity
  end
  return math.min(capacity, tokens + math.max(0, now - ts) * capacity / 60)
end

local team_capacity, provider_capacity, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local team = level(KEYS[1], team_capacity)
local provider = level(KEYS[2], provider_capacity)

if amount > team then
  return {'1', tostring(team), tostring(provider), tostring((amount - team) * 60 / team_capacity)}
end
if amount > provider then
  return {'2', tostring(team), tostring(provider), tostring((amount - provider) * 60 / provider_capacity)}
end

team = team - amount
provider = provider - amount
redis.call('HSET', KEYS[1], 'tokens', tostring(team), 'ts', tostring(now))
redis.call('HSET', KEYS[2], 'tokens', tostring(provider), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 180)
redis.call('EXPIRE', KEYS[2], 180)
return {'0', tostring(team), tostring(provider), '0'}
