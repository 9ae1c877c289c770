-- POST /v1/tasks/:id/snooze on a random open task.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local sent = 0

function init(args)
   ids = read_lines("BENCH_IDS")
   math.randomseed(os.time() + thread_index)
end

function request()
   sent = sent + 1
   local body = string.format(
      '{"newDueDate": "2031-%02d-%02dT%02d:00:00Z"}', 1 + sent % 12, 1 + sent % 28, sent % 24)
   return wrk.format("POST", "/v1/tasks/" .. ids[math.random(#ids)] .. "/snooze", json_headers, body)
end
