-- Reserve tokens in a team budget and a provider budget, both or neither, for a batch of requests.
--
-- Per item i (1..#KEYS/2), applied in order, each seeing the ones before it (as separate calls would):
-- KEYS[2i-1]  team budget     (hash: second -> tokens reserved in that second)
-- KEYS[2i]    provider budget (same shape)
-- ARGV[3i-2]  team limit (tokens per minute)
-- ARGV[3i-1]  provider limit (tokens per minute)
-- ARGV[3i]    tokens to reserve
--
-- Sliding window of one-second buckets on Redis server time (so every
-- instance agrees). A reservation in second b is admitted when the buckets
-- b-60 .. b plus the amount stay within the limit: any 60-second interval
-- then holds at most the limit (61 buckets cover every such interval).
-- Returns, per item, {status, team_remaining, provider_remaining, retry_after,
-- second} as strings, the items' lists one after another; status 0 reserved,
-- 1 team short, 2 provider short; retry_after is the seconds until enough old
-- buckets leave the window.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local second = math.floor(now)
local oldest = second - 60

local function window(key)
  local flat = redis.call('HGETALL', key)
  local buckets, total, stale = {}, 0, {}
  for i = 1, #flat, 2 do
    local k, v = tonumber(flat[i]), tonumber(flat[i + 1])
    if k < oldest then
      stale[#stale + 1] = flat[i]
    else
      buckets[#buckets + 1] = {k, v}
      total = total + v
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  return total, buckets
end

local function wait_for(buckets, excess)
  local freed = 0
  for _, bucket in ipairs(buckets) do
    freed = freed + bucket[2]
    if freed >= excess then
      return math.max(0, bucket[1] + 61 - now)
    end
  end
  return 61
end

local function reserve(team_key, provider_key, team_limit, provider_limit, amount)
  local team_used, team_buckets = window(team_key)
  local provider_used, provider_buckets = window(provider_key)
  if team_used + amount > team_limit then
    return {'1', tostring(team_limit - team_used), tostring(provider_limit - provider_used),
            tostring(wait_for(team_buckets, team_used + amount - team_limit)), tostring(second)}
  end
  if provider_used + amount > provider_limit then
    return {'2', tostring(team_limit - team_used), tostring(provider_limit - provider_used),
            tostring(wait_for(provider_buckets, provider_used + amount - provider_limit)), tostring(second)}
  end
  redis.call('HINCRBY', team_key, second, amount)
  redis.call('HINCRBY', provider_key, second, amount)
  redis.call('EXPIRE', team_key, 120)
  redis.call('EXPIRE', provider_key, 120)
  return {'0', tostring(team_limit - team_used - amount), tostring(provider_limit - provider_used - amount), '0',
          tostring(second)}
end

local reply = {}
for i = 1, #KEYS / 2 do
  local item = reserve(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]),
                       tonumber(ARGV[3 * i]))
  for _, value in ipairs(item) do reply[#reply + 1] = value end
end
return reply
