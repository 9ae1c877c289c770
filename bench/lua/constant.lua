-- GET the constant task: the ceiling of this server and framework with no database.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

function request()
   return wrk.format("GET", nil, read_headers)
end
