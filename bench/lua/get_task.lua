-- GET /v1/tasks/:id of a random task of the tenant.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

function init(args)
   ids = read_lines("BENCH_IDS")
   math.randomseed(os.time() + thread_index)
end

function request()
   return wrk.format("GET", "/v1/tasks/" .. ids[math.random(#ids)], read_headers)
end
