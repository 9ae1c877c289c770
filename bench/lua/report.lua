-- Shared by every script: wrk's summary as one line of JSON for bench/load.py, and the
-- request helpers. Each script starts with dofile(os.getenv("BENCH_LUA") .. "/report.lua").

api_key = os.getenv("BENCH_API_KEY") or ""
json_headers = { ["x-tenant-api-key"] = api_key, ["content-type"] = "application/json" }
read_headers = { ["x-tenant-api-key"] = api_key }

-- One line per entry of the file named by the environment variable.
function read_lines(variable)
   local lines = {}
   local path = os.getenv(variable)
   if path == nil then return lines end
   for line in io.lines(path) do
      if line ~= "" then table.insert(lines, line) end
   end
   return lines
end

-- Each wrk thread learns its number and the thread count, to take a share of the ids.
local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function thread_count()
   return tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end
