-- KEYS: record hash. ARGV: offset, token, fingerprint, lease_seconds, gc_grace
-- -> {kind, a, b}
local now = now_s()
local r = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'lease_until', 'data',
                     'completed_at', 'expires_at')
local reclaimed = '0'
if r[1] == 'completed' and tonumber(r[6]) > now then
  if r[2] ~= ARGV[3] then return {'conflict', 'completed', ''} end
  return {'completed', r[4], r[5]}
elseif r[1] == 'in_progress' then
  local left = tonumber(r[3]) - now
  if left > 0 then
    if r[2] ~= ARGV[3] then return {'conflict', 'in_progress', ''} end
    return {'in_progress', tostring(left), ''}
  end
  reclaimed = '1'
end
redis.call('DEL', KEYS[1])
local lease = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'in_progress', 'token', ARGV[2], 'fingerprint', ARGV[3],
           'lease_until', tostring(now + lease), 'started_at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((lease + tonumber(ARGV[5])) * 1000))
return {'acquired', reclaimed, ''}
