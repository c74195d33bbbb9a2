-- Prelude of the scripts loaded with clock=True: server time in seconds plus the
-- caller's clock offset (ARGV[1]), so a FakeClock moves Redis time in tests.
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
end
