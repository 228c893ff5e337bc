-- budget_reserve: reserve spend before an LLM call, atomically against both budgets.
-- KEYS[1] the service's spend counter of the day   KEYS[2] the tenant's
-- ARGV[1] amount (nano-USD)   ARGV[2] service cap   ARGV[3] tenant cap (-1: none)
-- ARGV[4] counter TTL (s)
-- Returns: 'ok', or the scope without room ('service' / 'tenant').
-- requires: reserve
return reserve(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
