-- POST /v1/tasks/:id/complete: each thread completes its own share of the open tasks, each
-- once (a second completion would be refused).
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local next_index = 0

function init(args)
   local all = read_lines("BENCH_IDS")
   local threads = thread_count()
   ids = {}
   for i = 1, #all do
      if (i - 1) % threads == thread_index then table.insert(ids, all[i]) end
   end
end

function request()
   next_index = next_index % #ids + 1
   return wrk.format(
      "POST", "/v1/tasks/" .. ids[next_index] .. "/complete", json_headers,
      '{"outcome": "resolved", "completionNotes": "Done"}')
end
