-- May a request go to this provider now?
--
-- KEYS[1]  the provider's breaker (hash: state, open_until, cool_until, trips, probes, probe_since,
--          closed_since, and window counts o:<second> / f:<second>)
-- ARGV[1]  half_open_probes: probes allowed at once across every instance
-- ARGV[2]  probe_ttl: seconds after which a probe that never reported frees its permit
--
-- Returns {allowed (0|1), state, wait_seconds, reason} as strings; reason is
-- closed | probe | open | cooldown | probe_busy. An open breaker whose open
-- period has passed becomes half-open here and hands out probe permits.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local key = KEYS[1]
local max_probes, probe_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local f = redis.call('HMGET', key, 'state', 'open_until', 'cool_until', 'probes', 'probe_since')
local state = f[1] or 'closed'
local open_until, cool_until = tonumber(f[2] or '0'), tonumber(f[3] or '0')
local probes, probe_since = tonumber(f[4] or '0'), tonumber(f[5] or '0')

if cool_until > now then
  return {'0', state, tostring(cool_until - now), 'cooldown'}
end
if state == 'open' then
  if now < open_until then
    return {'0', 'open', tostring(open_until - now), 'open'}
  end
  state, probes = 'half_open', 0
  redis.call('HSET', key, 'state', 'half_open', 'probes', 0)
end
if state == 'half_open' then
  if probes > 0 and now - probe_since > probe_ttl then
    probes = 0
  end
  if probes >= max_probes then
    return {'0', 'half_open', '1', 'probe_busy'}
  end
  redis.call('HSET', key, 'probes', probes + 1, 'probe_since', tostring(now))
  redis.call('EXPIRE', key, 86400)
  return {'1', 'half_open', '0', 'probe'}
end
return {'1', 'closed', '0', 'closed'}
