-- KEYS: state hash, permits zset. ARGV: offset, target, timeout, reason, ttl
-- -> {old_state, gen}
local now = now_s()
local old = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[2] == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(now + tonumber(ARGV[3])),
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'state', 'closed', 'consecutive_failures', 0,
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', ARGV[4])
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('DEL', KEYS[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {old, tostring(gen)}
