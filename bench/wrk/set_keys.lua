-- POST /set over a fixed key space: BENCH_KEYS keys (default 10000) of BENCH_VALUE_BYTES
-- (default 100) bytes each, overwritten round-robin, starting at key BENCH_KEY_OFFSET.
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local value_bytes = tonumber(os.getenv("BENCH_VALUE_BYTES") or "100")
local offset = tonumber(os.getenv("BENCH_KEY_OFFSET") or "0")
local threads_total = tonumber(os.getenv("BENCH_THREADS") or "2")

request = function()
  counter = counter + 1
  local n = ((counter - 1) * threads_total + id - 1 + offset) % keys
  local value = padded_value(counter, value_bytes)
  local body = string.format('{"key":"k%d","value":"%s","action":"set"}', n, value)
  return wrk.format("POST", "/set", { ["Content-Type"] = "application/json" }, body)
end
