-- POST /set of a fresh key per request (a 16-byte value).
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/?.lua"
require "common"

request = function()
  counter = counter + 1
  local body = string.format('{"key":"w%d-%d","value":"value-%010d","action":"set"}', id, counter,
                             counter)
  return wrk.format("POST", "/set", { ["Content-Type"] = "application/json" }, body)
end
