-- GET /get of a preloaded key; BENCH_CONSISTENCY=stale reads the node's own copy.
-- With BENCH_KEYS=N: a random one of k0 .. k(N-1), and a 404 counts as an error (every key was
-- preloaded). Without it: one of r0 .. r999, 404 allowed (the old behaviour).
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

local suffix = os.getenv("BENCH_CONSISTENCY") == "stale" and "&consistency=stale" or ""
not_found_is_error = bench_keys ~= nil

request = function()
  counter = counter + 1
  local key = bench_keys and random_key() or string.format("r%d", (counter * 7 + id) % 1000)
  return wrk.format("GET", "/get?key=" .. key .. suffix)
end
