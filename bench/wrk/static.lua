-- GET of nginx's static file (bench/run.sh --nginx): the reference for stale reads.
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

not_found_is_error = true

request = function()
  return wrk.format("GET", "/value")
end
