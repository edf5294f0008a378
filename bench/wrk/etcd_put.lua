-- etcd v3 JSON gateway: put of a fresh key per request (same sizes as set.lua).
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

request = function()
  counter = counter + 1
  local body = string.format('{"key":"%s","value":"%s"}', base64(string.format("w%d-%d", id, counter)),
                             base64(string.format("value-%010d", counter)))
  return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" }, body)
end
