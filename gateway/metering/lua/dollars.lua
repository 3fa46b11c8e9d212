-- Dollar budgets: reserve then settle, per calendar day and month in the configured time zone, on Redis time;
-- a batch of requests' reserves (or settlements) per call, applied in order, each seeing the ones before it.
--
-- KEYS      every item's budgets, item after item: one hash per budget (gw:{usd:<team>}:<scope>:<window>):
--           field = period id, value = nano-dollars spent or reserved in that period; other periods' fields
--           are dropped as a new period starts
-- ARGV      mode ("reserve" | "settle"), tz offset (s), then per item: its number of keys n, then
-- reserve:    amount, then per key: window ("day"|"month"), limit
--             -> {0, remaining after, period ids...} or {1, index of the short budget, seconds to its reset, remaining}
-- settle:     delta (actual - reserved), then per key: window, period id (from the reserve)
--             -> {0} (a refund never takes a period below zero)
-- Reply     per item: the length of its answer, then the answer

local function civil(z)  -- days since 1970-01-01 -> year, month, day (H. Hinnant's algorithm)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_in(y, m)
  local days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
  if m == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then return 29 end
  return days[m]
end

local function settle(keys, delta, fields)
  for i = 1, #keys do
    local spent = tonumber(redis.call("HGET", keys[i], fields[i]) or "0")
    local after = spent + delta
    if after < 0 then after = 0 end
    if redis.call("EXISTS", keys[i]) == 1 or after > 0 then
      redis.call("HSET", keys[i], fields[i], string.format("%d", after))
    end
  end
  return {0}
end

local now = redis.call("TIME")
local t = tonumber(now[1]) + tonumber(ARGV[2])
local day = math.floor(t / 86400)
local y, m, d = civil(day)
local day_left = 86400 - (t - day * 86400)
local month_left = (days_in(y, m) - d) * 86400 + day_left
local periods = {day = string.format("%04d-%02d-%02d", y, m, d), month = string.format("%04d-%02d", y, m)}
local resets = {day = day_left, month = month_left}

local function reserve(keys, amount, windows, limits)
  local remaining = nil
  local fields = {}
  for i = 1, #keys do
    local field = periods[windows[i]]
    local spent = tonumber(redis.call("HGET", keys[i], field) or "0")
    if spent + amount > limits[i] then
      return {1, i, resets[windows[i]], string.format("%d", math.max(0, limits[i] - spent))}
    end
    local left = limits[i] - spent - amount
    if remaining == nil or left < remaining then remaining = left end
    fields[i] = field
  end
  for i = 1, #keys do
    for _, old in ipairs(redis.call("HKEYS", keys[i])) do
      if old ~= fields[i] then redis.call("HDEL", keys[i], old) end
    end
    redis.call("HINCRBY", keys[i], fields[i], amount)
    redis.call("EXPIRE", keys[i], resets[windows[i]] + 86400)
  end
  local reply = {0, string.format("%d", remaining)}
  for i = 1, #keys do reply[#reply + 1] = fields[i] end
  return reply
end

local reply, key, arg = {}, 1, 3
while arg <= #ARGV do
  local n, amount = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
  local keys, windows, values = {}, {}, {}
  for i = 1, n do
    keys[i] = KEYS[key + i - 1]
    windows[i] = ARGV[arg + 2 * i]
    values[i] = ARGV[arg + 1 + 2 * i]
  end
  key, arg = key + n, arg + 2 + 2 * n
  local answer
  if ARGV[1] == "settle" then
    answer = settle(keys, amount, values)
  else
    for i = 1, n do values[i] = tonumber(values[i]) end
    answer = reserve(keys, amount, windows, values)
  end
  reply[#reply + 1] = #answer
  for _, value in ipairs(answer) do reply[#reply + 1] = value end
end
return reply
