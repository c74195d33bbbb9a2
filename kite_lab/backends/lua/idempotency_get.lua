-- KEYS: record hash. ARGV: offset -> HGETALL, or {} when the result has expired
local all = redis.call('HGETALL', KEYS[1])
local r = redis.call('HMGET', KEYS[1], 'state', 'expires_at')
if r[1] == 'completed' and tonumber(r[2]) <= now_s() then return {} end
return all
