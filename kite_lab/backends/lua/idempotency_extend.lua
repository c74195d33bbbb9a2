-- KEYS: record hash. ARGV: offset, token, lease_seconds, gc_grace -> 1 / 0 not the owner
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] ~= 'in_progress' or r[2] ~= ARGV[2] then return 0 end
local lease = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_until', tostring(now_s() + lease))
redis.call('PEXPIRE', KEYS[1], math.ceil((lease + tonumber(ARGV[4])) * 1000))
return 1
