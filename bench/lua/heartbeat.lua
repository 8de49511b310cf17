-- Heartbeats of open work sessions (hourly projects), rotating: connection i of N takes lines
-- i, i+N, ... of the sessions file and beats them in turn, each with its own worker's key, so
-- with many sessions each one beats every few seconds (as real worker apps do) and nearly every
-- beat adds time to its session, timesheet and project budget. No body, no Idempotency-Key.
-- wrk args: <sessions file: api_key TAB session_id per line> <connections>
dofile(string.gsub(debug.getinfo(1, "S").source, "^@(.*/)[^/]*$", "%1") .. "common.lua")

function init(args)
   beats = {}
   for _, line in ipairs(read_share(args[1], thread_index, tonumber(args[2]))) do
      local api_key, session_id = string.match(line, "^([^\t]+)\t([^\t]+)$")
      table.insert(beats, wrk.format(
         "POST",
         "/v1/work/sessions/" .. session_id .. "/heartbeat",
         { ["Authorization"] = "Bearer " .. api_key },
         ""
      ))
   end
   if #beats == 0 then
      error("no sessions for connection " .. thread_index .. " (more connections than sessions)")
   end
   -- The turn moves on in response(): wrk calls request() once more than it sends (a check).
   turn = 0
end

function request()
   return beats[turn % #beats + 1]
end

function response(status, headers, body)
   turn = turn + 1
   if status == 200 then
      count_ok("heartbeat")
   else
      count_failure("heartbeat", status, body)
   end
end
