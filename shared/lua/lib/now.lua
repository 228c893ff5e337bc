-- lib/now: Redis TIME in integer milliseconds (the one clock every worker shares)
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
