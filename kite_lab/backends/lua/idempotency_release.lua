-- KEYS: record hash. ARGV: offset, token -> 1 released / 0 not the owner
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] ~= 'in_progress' or r[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
