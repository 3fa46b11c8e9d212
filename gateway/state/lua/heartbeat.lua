-- One gateway instance says it is alive; returns how many are.
--
-- KEYS[1]  the instances sorted set (member: instance id, score: Redis time of its last beat)
-- ARGV[1]  this instance's id
-- ARGV[2]  seconds without a beat after which an instance counts as gone
--
-- Scores are Redis server time, never an instance's own clock: an instance whose
-- clock runs fast can neither expire the others nor keep itself alive longer.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], 60)
return redis.call('ZCARD', KEYS[1])
