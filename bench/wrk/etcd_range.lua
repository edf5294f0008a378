-- etcd v3 JSON gateway: linearizable (default) or serializable range of one of 1000 keys.
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

local serializable = os.getenv("BENCH_CONSISTENCY") == "stale" and ',"serializable":true' or ""

request = function()
  counter = counter + 1
  local body = string.format('{"key":"%s"%s}', base64(string.format("r%d", (counter * 7 + id) % 1000)),
                             serializable)
  return wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" }, body)
end
