-- GET /get of one of 1000 preloaded keys; BENCH_CONSISTENCY=stale reads the node's own copy.
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

local suffix = os.getenv("BENCH_CONSISTENCY") == "stale" and "&consistency=stale" or ""

request = function()
  counter = counter + 1
  return wrk.format("GET", string.format("/get?key=r%d%s", (counter * 7 + id) % 1000, suffix))
end
