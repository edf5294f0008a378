-- Shared by the wrk scripts: per-thread ids, counting of unexpected statuses, and one summary
-- line that bench/run.sh parses: "RESULT rps=<n> p50_ms=<n> p99_ms=<n> errors=<n> max_ms=<n>".
--
-- Knobs every script gets from the environment:
--   BENCH_STOP_AFTER=N  stop the thread after N answers of 200 (the preload: wrk has no request
--                       count, only a duration, so the script ends the run itself), and then
--                       create the file BENCH_DONE_FILE: wrk's main thread sleeps for the whole
--                       -d regardless, so the caller sends wrk SIGINT when the file appears
--                       (wrk then prints its summary as after -d).
-- A script sets not_found_is_error = true when every key it reads was preloaded (a 404 is then
-- a lost key, not an expected answer), and body_ok(body) to check a 200's body (etcd answers a
-- range of a missing key with 200 and no "kvs").
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0")
local done_file = os.getenv("BENCH_DONE_FILE")

function init(args)
  counter = 0
  errors = 0
  ok = 0
  unexpected = {} -- "503" -> count, "miss" -> count: which errors, for the ERRORS line
end

local function count_unexpected(what)
  errors = errors + 1
  unexpected[what] = (unexpected[what] or 0) + 1
end

function response(status, headers, body)
  if status == 200 then
    if body_ok and not body_ok(body) then
      count_unexpected("miss")
    end
    ok = ok + 1
    if stop_after > 0 and ok == stop_after then
      if done_file then
        local f = io.open(done_file, "w")
        if f then f:close() end
      end
      wrk.thread:stop()
    end
  elseif status ~= 404 or not_found_is_error then
    count_unexpected(tostring(status))
  end
end

function done(summary, latency, requests)
  local errs = 0
  local kinds = {}
  for _, t in ipairs(threads) do
    errs = errs + t:get("errors")
    for what, n in pairs(t:get("unexpected") or {}) do
      kinds[what] = (kinds[what] or 0) + n
    end
  end
  for _, what in ipairs({ "connect", "read", "write", "timeout" }) do
    if summary.errors[what] > 0 then
      kinds[what] = summary.errors[what]
      errs = errs + summary.errors[what]
    end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d max_ms=%.2f\n",
                         summary.requests / seconds, latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000, errs, latency.max / 1000))
  -- Which errors: HTTP statuses, "miss" (a preloaded key not found), socket errors.
  if errs > 0 then
    local parts = {}
    for what, n in pairs(kinds) do table.insert(parts, what .. "=" .. n) end
    table.sort(parts)
    io.write("ERRORS " .. table.concat(parts, " ") .. "\n")
  end
end

-- The preloaded key space (BENCH_KEYS keys named k0, k1, ... of BENCH_VALUE_BYTES bytes), the
-- same for every system so that both store the same data.
bench_keys = tonumber(os.getenv("BENCH_KEYS") or "")
bench_value_bytes = tonumber(os.getenv("BENCH_VALUE_BYTES") or "100")

-- A value of exactly `bytes` characters that ends in the (last) digits of n. Lua's format
-- takes widths of two digits at most, hence the padding by hand.
function padded_value(n, bytes)
  local digits = tostring(n):sub(-bytes)
  return string.rep("0", bytes - #digits) .. digits
end

function random_key()
  return "k" .. math.random(0, bench_keys - 1)
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64 = {}
for i = 1, 64 do b64[i - 1] = b64chars:sub(i, i) end

-- For etcd's JSON gateway, which wants keys and values in base64. Three bytes at a time with
-- arithmetic: wrk shares the cores with the servers, so its CPU per request is kept small.
function base64(data)
  local out = {}
  local len = #data
  for i = 1, len, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144)
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64[c1] .. b64[c2] .. (b and b64[c3] or "=") .. (c and b64[c4] or "=")
  end
  return table.concat(out)
end
