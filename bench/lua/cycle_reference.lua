-- accept -> submit on bench/reference_app.py (no auth: the worker's id is in the body), one
-- worker per connection, the same workers file as the API's script.
-- wrk args: <workers.tsv> <project_id> <answer JSON> <requester_id> <reward_cents> <fee_cents>
--           <duration_seconds>
dofile(string.gsub(debug.getinfo(1, "S").source, "^@(.*/)[^/]*$", "%1") .. "common.lua")

function init(args)
   local worker_id = read_fields(args[1], thread_index)[2]
   headers = { ["Content-Type"] = "application/json" }
   accept_request = wrk.format("POST", "/accept", headers, string.format(
      '{"project_id":"%s","worker_id":"%s","requester_id":"%s","reward_cents":%s,'
         .. '"fee_cents":%s,"duration_seconds":%s}',
      args[2], worker_id, args[4], args[5], args[6], args[7]
   ))
   submit_body = '{"answer":' .. args[3] .. ',"worker_id":"' .. worker_id .. '"}'
   state, assignment_id = "accept", nil
end

function request()
   if state == "accept" then
      return accept_request
   end
   return wrk.format("POST", "/submit/" .. assignment_id, headers, submit_body)
end

function response(status, headers, body)
   if state == "accept" then
      if status == 201 then
         assignment_id = string.match(body, '"assignment_id"%s*:%s*"([^"]+)"')
         count_ok("accept")
         state = "submit"
      else
         count_failure("accept", status, body)
      end
   else
      if status == 200 then
         count_ok("submit")
      else
         count_failure("submit", status, body)
      end
      state = "accept"
   end
end
