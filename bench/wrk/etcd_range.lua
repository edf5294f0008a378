-- etcd v3 JSON gateway: linearizable (default) or serializable (BENCH_CONSISTENCY=stale) range
-- of one key. With BENCH_KEYS=N: a random one of k0 .. k(N-1), and an answer without the key
-- counts as an error. Without it: one of r0 .. r999 (the old behaviour).
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

local serializable = os.getenv("BENCH_CONSISTENCY") == "stale" and ',"serializable":true' or ""
if bench_keys then
  body_ok = function(body) return body:find('"kvs"', 1, true) ~= nil end
end

request = function()
  counter = counter + 1
  local key = bench_keys and random_key() or string.format("r%d", (counter * 7 + id) % 1000)
  local body = string.format('{"key":"%s"%s}', base64(key), serializable)
  return wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" }, body)
end
