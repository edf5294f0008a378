-- 90/10 read/write mix over the preloaded key space (BENCH_KEYS, required): GET /get
-- (linearizable unless BENCH_CONSISTENCY=stale) of a random key, and every
-- (100 / BENCH_WRITE_PERCENT)-th request, default every 10th, a POST /set overwriting a random
-- key with BENCH_VALUE_BYTES bytes. A 404 is an error: every key was preloaded.
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

assert(bench_keys, "mix.lua needs BENCH_KEYS")
local every = math.floor(100 / tonumber(os.getenv("BENCH_WRITE_PERCENT") or "10") + 0.5)
local suffix = os.getenv("BENCH_CONSISTENCY") == "stale" and "&consistency=stale" or ""
local headers = { ["Content-Type"] = "application/json" }
not_found_is_error = true

request = function()
  counter = counter + 1
  if counter % every == 0 then
    local body = string.format('{"key":"%s","value":"%s","action":"set"}', random_key(),
                               padded_value(counter, bench_value_bytes))
    return wrk.format("POST", "/set", headers, body)
  end
  return wrk.format("GET", "/get?key=" .. random_key() .. suffix)
end
