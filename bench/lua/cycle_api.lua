-- accept -> submit through the public API, one worker (API key) per connection.
-- wrk args: <workers.tsv: api_key TAB worker_id per line> <project_id> <answer JSON>
dofile(string.gsub(debug.getinfo(1, "S").source, "^@(.*/)[^/]*$", "%1") .. "common.lua")

function init(args)
   local worker = read_fields(args[1], thread_index)
   local auth = "Bearer " .. worker[1]
   accept_request = wrk.format(
      "POST", "/v1/work/projects/" .. args[2] .. "/accept", { ["Authorization"] = auth }, ""
   )
   submit_headers = { ["Authorization"] = auth, ["Content-Type"] = "application/json" }
   submit_body = '{"answer":' .. args[3] .. "}"
   state, assignment_id = "accept", nil
end

function request()
   if state == "accept" then
      return accept_request
   end
   return wrk.format(
      "POST", "/v1/assignments/" .. assignment_id .. "/submit", submit_headers, submit_body
   )
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
