-- PATCH /v1/tasks/:id: a new title for a random task of the tenant, so every request changes it.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local sent = 0

function init(args)
   ids = read_lines("BENCH_IDS")
   math.randomseed(os.time() + thread_index)
end

function request()
   sent = sent + 1
   local body = string.format('{"title": "Renamed %d-%d"}', thread_index, sent)
   return wrk.format("PATCH", "/v1/tasks/" .. ids[math.random(#ids)], json_headers, body)
end
