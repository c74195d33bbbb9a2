-- KEYS: record hash. ARGV: offset, token, data, ttl_seconds -> 1 stored / 0 not the owner
local r = redis.call('HMGET', KEYS[1], 'state', 'token', 'fingerprint')
if r[1] ~= 'in_progress' or r[2] ~= ARGV[2] then return 0 end
local now = now_s()
local ttl = tonumber(ARGV[4])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'completed', 'fingerprint', r[3], 'data', ARGV[3],
           'completed_at', tostring(now), 'expires_at', tostring(now + ttl))
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
return 1
