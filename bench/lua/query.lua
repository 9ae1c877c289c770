-- GET one of the paths in the file BENCH_PATHS (lists, stats, analytics), at random.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

function init(args)
   paths = read_lines("BENCH_PATHS")
   math.randomseed(os.time() + thread_index)
end

function request()
   return wrk.format("GET", paths[math.random(#paths)], read_headers)
end
