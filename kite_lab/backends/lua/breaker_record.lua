-- KEYS: state hash, permits zset
-- ARGV: offset, outcome, token, failure_threshold, success_threshold, timeout, error, ttl
-- -> {state, old_state_if_transitioned, reason, consecutive_failures, gen}
local st = redis.call('HMGET', KEYS[1], 'state', 'consecutive_failures', 'gen')
local state = st[1] or 'closed'
local token = ARGV[3]
if ARGV[2] == 'release' then
  if token ~= '' then redis.call('ZREM', KEYS[2], token) end
  return {state, '', '', st[2] or '0', st[3] or '0'}
end
local now = now_s()
local holder = token ~= '' and redis.call('ZREM', KEYS[2], token) == 1
redis.call('HINCRBY', KEYS[1], 'total_calls', 1)
local new, reason = '', ''
local n = 0
if ARGV[2] == 'success' then
  redis.call('HINCRBY', KEYS[1], 'successful_calls', 1)
  if state == 'closed' then
    redis.call('HSET', KEYS[1], 'consecutive_failures', 0)
  elseif state == 'half_open' and holder then
    local ok = redis.call('HINCRBY', KEYS[1], 'half_open_successes', 1)
    if ok >= tonumber(ARGV[5]) then new, reason = 'closed', 'probe calls succeeded' end
  end
  n = tonumber(redis.call('HGET', KEYS[1], 'consecutive_failures') or 0)
else
  redis.call('HINCRBY', KEYS[1], 'failed_calls', 1)
  redis.call('HSET', KEYS[1], 'last_failure_at', tostring(now), 'last_failure_error', ARGV[7])
  n = redis.call('HINCRBY', KEYS[1], 'consecutive_failures', 1)
  if state == 'closed' and n >= tonumber(ARGV[4]) then
    new, reason = 'open', n .. ' consecutive failures'
  elseif state == 'half_open' and holder then
    new, reason = 'open', 'probe call failed'
  end
end
local gen = st[3] or '0'
if new == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(now + tonumber(ARGV[6])),
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', reason)
  redis.call('DEL', KEYS[2])
elseif new == 'closed' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'consecutive_failures', 0,
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', reason)
  redis.call('DEL', KEYS[2])
  n = 0
end
if new ~= '' then gen = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1)) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
if new ~= '' then return {new, state, reason, tostring(n), gen} end
return {state, '', '', tostring(n), gen}
