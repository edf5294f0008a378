-- etcd v3 JSON gateway: the same 90/10 mix as mix.lua (BENCH_KEYS required): a linearizable
-- range (serializable with BENCH_CONSISTENCY=stale) of a random key, and every
-- (100 / BENCH_WRITE_PERCENT)-th request a put overwriting a random key. Only the status is
-- checked: a put's answer and that of a range of a missing key look alike (a header alone), and
-- the read scenarios check that every key is there.
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

assert(bench_keys, "etcd_mix.lua needs BENCH_KEYS")
local every = math.floor(100 / tonumber(os.getenv("BENCH_WRITE_PERCENT") or "10") + 0.5)
local serializable = os.getenv("BENCH_CONSISTENCY") == "stale" and ',"serializable":true' or ""
local headers = { ["Content-Type"] = "application/json" }

request = function()
  counter = counter + 1
  if counter % every == 0 then
    local body = string.format('{"key":"%s","value":"%s"}', base64(random_key()),
                               base64(padded_value(counter, bench_value_bytes)))
    return wrk.format("POST", "/v3/kv/put", headers, body)
  end
  local body = string.format('{"key":"%s"%s}', base64(random_key()), serializable)
  return wrk.format("POST", "/v3/kv/range", headers, body)
end
