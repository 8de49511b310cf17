-- Approve submitted assignments, each once: connection i of N takes lines i, i+N, ... of the
-- ids file. Against the API (with the requester's key) or the reference app (the requester's
-- id in the body). A connection that runs out of ids stops (counted as exhausted).
-- wrk args: <ids file> <connections> <"api" | "reference"> <requester API key | requester id>
dofile(string.gsub(debug.getinfo(1, "S").source, "^@(.*/)[^/]*$", "%1") .. "common.lua")

function init(args)
   ids = read_share(args[1], thread_index, tonumber(args[2]))
   answered = 0 -- ids done; request() has no side effect (wrk calls it once to verify it)
   if args[3] == "api" then
      path_prefix, suffix = "/v1/assignments/", "/approve"
      headers = { ["Authorization"] = "Bearer " .. args[4] }
      body = ""
   else
      path_prefix, suffix = "/approve/", ""
      headers = { ["Content-Type"] = "application/json" }
      body = '{"requester_id":"' .. args[4] .. '"}'
   end
   exhausted = false
end

function request()
   local id = ids[answered + 1]
   if id == nil then
      exhausted = true
      wrk.thread:stop()
      -- wrk still wants a request: a harmless read of nothing (its answer is not counted).
      return wrk.format("GET", "/healthz")
   end
   return wrk.format("POST", path_prefix .. id .. suffix, headers, body)
end

function response(status, headers, body)
   if exhausted then
      return
   end
   answered = answered + 1
   if status == 200 then
      count_ok("approve")
   else
      count_failure("approve", status, body)
   end
end
