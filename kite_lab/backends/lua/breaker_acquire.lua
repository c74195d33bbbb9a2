-- KEYS: state hash, permits zset. ARGV: offset, half_open_max, permit_seconds, token, ttl
-- -> {decision, state, retry_after, transitioned_from, gen}
local st = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'gen')
local state = st[1] or 'closed'
local gen = st[3] or '0'
if state == 'closed' then return {'allowed', 'closed', '', '', gen} end
local now = now_s()
local from = ''
if state == 'open' then
  local open_until = tonumber(st[2]) or 0
  if now < open_until then
    redis.call('HINCRBY', KEYS[1], 'rejected_calls', 1)
    return {'rejected', 'open', tostring(open_until - now), '', gen}
  end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'half_open_successes', 0,
             'changed_at', tostring(now), 'reason', 'timeout elapsed')
  gen = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1))
  redis.call('DEL', KEYS[2])
  from = 'open'
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tostring(now))
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], tostring(now + tonumber(ARGV[3])), ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return {'allowed', 'half_open', '', from, gen}
end
redis.call('HINCRBY', KEYS[1], 'rejected_calls', 1)
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {'rejected', 'half_open', tostring(tonumber(first[2]) - now), from, gen}
