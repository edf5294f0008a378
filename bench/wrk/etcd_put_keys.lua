-- etcd v3 JSON gateway: the same writes as set_keys.lua (BENCH_KEYS keys, default 10000, of
-- BENCH_VALUE_BYTES bytes, default 100, overwritten round-robin from key BENCH_KEY_OFFSET;
-- BENCH_THREADS is wrk's -t).
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

local keys = bench_keys or 10000
local offset = tonumber(os.getenv("BENCH_KEY_OFFSET") or "0")
local threads_total = tonumber(os.getenv("BENCH_THREADS") or "2")
local headers = { ["Content-Type"] = "application/json" }

request = function()
  counter = counter + 1
  local n = ((counter - 1) * threads_total + id - 1 + offset) % keys
  local body = string.format('{"key":"%s","value":"%s"}', base64("k" .. n),
                             base64(padded_value(counter, bench_value_bytes)))
  return wrk.format("POST", "/v3/kv/put", headers, body)
end
