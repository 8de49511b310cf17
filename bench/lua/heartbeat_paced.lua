-- heartbeat.lua at a set pace, for the latency figure: each connection waits <delay ms> on
-- average before each request (wrk's delay() hook), so the phases compared (few vs many open
-- sessions) are offered the same load, below what either sustains, and their latencies are the
-- service's own, not the queue a saturating closed loop builds (whose length follows the
-- throughput). The wait is drawn uniformly from 0 to twice the mean, each connection with its
-- own seed: with a fixed wait the connections fall into step and arrive in bursts.
-- wrk args: <sessions file: api_key TAB session_id per line> <connections> <delay ms>
dofile(string.gsub(debug.getinfo(1, "S").source, "^@(.*/)[^/]*$", "%1") .. "heartbeat.lua")

local unpaced_init = init

function init(args)
   unpaced_init(args)
   mean_delay_ms = tonumber(args[3])
   math.randomseed(os.time() * 1000 + thread_index)
end

function delay()
   return math.random(0, 2 * mean_delay_ms)
end
