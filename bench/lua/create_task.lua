-- POST /v1/tasks: a new task per request, like a CRM creating follow-ups.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local sent = 0

function request()
   sent = sent + 1
   local body = string.format(
      '{"title": "Call back customer %d-%d", "priority": "high", ' ..
      '"dueDate": "2031-04-15T10:00:00Z", "ownerId": "agent_%03d", "ownerName": "Agent", ' ..
      '"relatedCustomerId": "cust_%d", "tags": ["followup"], "metadata": {"orderId": "ord_%d"}}',
      thread_index, sent, sent % 50, sent % 2000, sent)
   return wrk.format("POST", "/v1/tasks", json_headers, body)
end
