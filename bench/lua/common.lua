-- Shared by the wrk scripts of bench/wrkbench.py (loaded with dofile by each scenario).
--
-- wrk calls request() and response() without saying which connection they belong to, so the
-- bench runs one connection per wrk thread (-t N -c N): each thread's Lua state is then one
-- connection's state machine, one worker (one API key) per connection. setup() runs in wrk's
-- main Lua state before the threads start and numbers them; done() runs there at the end and
-- collects every thread's counters with thread:get().

local threads = {}
local next_index = 0

function setup(thread)
   thread:set("thread_index", next_index)
   next_index = next_index + 1
   table.insert(threads, thread)
end

-- Line `n` (0-based) of a tab-separated file, as a list of fields.
function read_fields(path, n)
   local i = 0
   for line in io.lines(path) do
      if i == n then
         local fields = {}
         for field in string.gmatch(line, "[^\t]+") do
            table.insert(fields, field)
         end
         return fields
      end
      i = i + 1
   end
   error("line " .. n .. " missing in " .. path .. " (fewer rows than wrk connections)")
end

-- Every line of a file whose 0-based number is `index` modulo `step`.
function read_share(path, index, step)
   local mine, i = {}, 0
   for line in io.lines(path) do
      if i % step == index then
         table.insert(mine, line)
      end
      i = i + 1
   end
   return mine
end

-- The per-thread counters every scenario keeps (globals of the thread's Lua state).
ok = {}
failed = {}

function count_ok(op)
   ok[op] = (ok[op] or 0) + 1
end

-- A refused request, counted by operation, status and the problem's `code`.
function count_failure(op, status, body)
   local code = body and string.match(body, '"code"%s*:%s*"([^"]*)"') or ""
   local key = op .. " " .. status .. " " .. code
   failed[key] = (failed[key] or 0) + 1
end

local function json_string(s)
   return '"' .. string.gsub(s, '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end) .. '"'
end

local function json_counts(counts)
   local parts = {}
   for key, n in pairs(counts) do
      table.insert(parts, json_string(key) .. ":" .. n)
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

-- One line the bench parses: totals over the threads, wrk's own summary and latencies (us).
function done(summary, latency, requests)
   local oks, fails = {}, {}
   local exhausted = 0
   for _, thread in ipairs(threads) do
      for op, n in pairs(thread:get("ok") or {}) do
         oks[op] = (oks[op] or 0) + n
      end
      for key, n in pairs(thread:get("failed") or {}) do
         fails[key] = (fails[key] or 0) + n
      end
      if thread:get("exhausted") then
         exhausted = exhausted + 1
      end
   end
   local e = summary.errors
   io.write("WRK_JSON {")
   io.write('"duration_us":' .. summary.duration .. ',"requests":' .. summary.requests)
   io.write(',"bytes":' .. summary.bytes .. ',"threads":' .. #threads)
   io.write(',"socket_errors":{"connect":' .. e.connect .. ',"read":' .. e.read)
   io.write(',"write":' .. e.write .. ',"status":' .. e.status .. ',"timeout":' .. e.timeout .. "}")
   io.write(',"latency_us":{"p50":' .. latency:percentile(50) .. ',"p90":' .. latency:percentile(90))
   io.write(',"p99":' .. latency:percentile(99) .. ',"max":' .. latency.max .. "}")
   io.write(',"ok":' .. json_counts(oks) .. ',"failed":' .. json_counts(fails))
   io.write(',"exhausted_threads":' .. exhausted .. "}\n")
end
