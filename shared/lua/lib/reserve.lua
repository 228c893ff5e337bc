-- lib/reserve: reserve `amount` nano-USD against the service's and a tenant's daily
-- counters, unless either would pass its cap (tenant_cap -1: no tenant budget).
-- Returns 'ok', or the scope that has no room ('service' / 'tenant').
local function reserve(service, tenant, amount, service_cap, tenant_cap, ttl)
  amount = tonumber(amount)
  local spent = tonumber(redis.call('GET', service) or '0')
  if spent + amount > tonumber(service_cap) then return 'service' end
  if tonumber(tenant_cap) >= 0 then
    local tspent = tonumber(redis.call('GET', tenant) or '0')
    if tspent + amount > tonumber(tenant_cap) then return 'tenant' end
  end
  redis.call('INCRBY', service, amount)
  redis.call('EXPIRE', service, ttl)
  redis.call('INCRBY', tenant, amount)
  redis.call('EXPIRE', tenant, ttl)
  return 'ok'
end
