-- Accept only (no submit), the other side of the heartbeat figure: connection i of N speaks for
-- the workers on lines i, i+N, ... of the workers file in turn (bench/scenarios.py's _rotating),
-- each accept with the next worker's key, on a per-answer project with a task for every accept.
-- wrk args: <workers file: api_key TAB worker_id per line> <connections> <project_id>
dofile(string.gsub(debug.getinfo(1, "S").source, "^@(.*/)[^/]*$", "%1") .. "common.lua")

function init(args)
   accepts = {}
   local path = "/v1/work/projects/" .. args[3] .. "/accept"
   for _, line in ipairs(read_share(args[1], thread_index, tonumber(args[2]))) do
      local api_key = string.match(line, "^([^\t]+)")
      table.insert(accepts, wrk.format("POST", path, { ["Authorization"] = "Bearer " .. api_key }, ""))
   end
   if #accepts == 0 then
      error("no workers for connection " .. thread_index .. " (more connections than workers)")
   end
   turn = 0 -- moves on in response(), as in heartbeat.lua
end

function request()
   return accepts[turn % #accepts + 1]
end

function response(status, headers, body)
   turn = turn + 1
   if status == 201 then
      count_ok("accept")
   else
      count_failure("accept", status, body)
   end
end
