-- Dollar budgets: reserve then settle, per calendar day and month in the configured time zone, on Redis time.
--
-- KEYS[i]   one hash per budget (gw:{usd:<team>}:<scope>:<window>): field = period id, value = nano-dollars
--           spent or reserved in that period; other periods' fields are dropped as a new period starts
-- reserve:  ARGV = "reserve", tz offset (s), amount, then per key: window ("day"|"month"), limit
--           -> {0, remaining after, period ids...} or {1, index of the short budget, seconds to its reset, remaining}
-- settle:   ARGV = "settle", delta (actual - reserved), then per key: window, period id (from the reserve)
--           -> 0 (a refund never takes a period below zero)

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

if ARGV[1] == "settle" then
  local delta = tonumber(ARGV[2])
  for i = 1, #KEYS do
    local field = ARGV[2 + 2 * i]
    local spent = tonumber(redis.call("HGET", KEYS[i], field) or "0")
    local after = spent + delta
    if after < 0 then after = 0 end
    if redis.call("EXISTS", KEYS[i]) == 1 or after > 0 then
      redis.call("HSET", KEYS[i], field, string.format("%d", after))
    end
  end
  return 0
end

local now = redis.call("TIME")
local t = tonumber(now[1]) + tonumber(ARGV[2])
local day = math.floor(t / 86400)
local y, m, d = civil(day)
local day_left = 86400 - (t - day * 86400)
local month_left = (days_in(y, m) - d) * 86400 + day_left
local periods = {day = string.format("%04d-%02d-%02d", y, m, d), month = string.format("%04d-%02d", y, m)}
local resets = {day = day_left, month = month_left}
local amount = tonumber(ARGV[3])
local remaining = nil
local fields = {}
for i = 1, #KEYS do
  local window = ARGV[2 + 2 * i]
  local limit = tonumber(ARGV[3 + 2 * i])
  local field = periods[window]
  local spent = tonumber(redis.call("HGET", KEYS[i], field) or "0")
  if spent + amount > limit then
    return {1, i, resets[window], string.format("%d", math.max(0, limit - spent))}
  end
  local left = limit - spent - amount
  if remaining == nil or left < remaining then remaining = left end
  fields[i] = field
end
for i = 1, #KEYS do
  local window = ARGV[2 + 2 * i]
  for _, old in ipairs(redis.call("HKEYS", KEYS[i])) do
    if old ~= fields[i] then redis.call("HDEL", KEYS[i], old) end
  end
  redis.call("HINCRBY", KEYS[i], fields[i], amount)
  redis.call("EXPIRE", KEYS[i], resets[window] + 86400)
end
local reply = {0, string.format("%d", remaining)}
for i = 1, #KEYS do reply[#reply + 1] = fields[i] end
return reply
