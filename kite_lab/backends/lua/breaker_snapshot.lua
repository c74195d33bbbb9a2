-- KEYS: state hash, permits zset. ARGV: offset -> HGETALL plus _now and _permits
local now = now_s()
local permits = redis.call('ZCOUNT', KEYS[2], '(' .. tostring(now), '+inf')
local all = redis.call('HGETALL', KEYS[1])
table.insert(all, '_now')
table.insert(all, tostring(now))
table.insert(all, '_permits')
table.insert(all, tostring(permits))
return all
