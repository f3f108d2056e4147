-- Shared by requests.lua and refresh.lua, which load it with dofile: numbers wrk's threads and
-- prints the one `WRK_JSON {...}` line that tools/bench/src/wrk/mod.rs parses (wrk's own report is
-- prose, and its figures are rounded for humans).
--
-- setup() and done() run in wrk's main Lua state; each thread runs its own Lua state, whose
-- globals the main state reads only through thread:get. Each script sets the per-thread globals
-- `threads_declared` and `connections_declared` (its copies of -t and -c) and may set
-- `sent_once` and `starved`.
local ffi = require("ffi")

ffi.cdef [[
typedef struct { uint64_t count, limit, min, max; } wrk_stats_head;
]]

local M = {}

-- wrk's thread objects in creation order; M.setup gives thread k the global `id` = k (0-based).
M.threads = {}

function M.setup(thread)
   thread:set("id", #M.threads)
   M.threads[#M.threads + 1] = thread
end

-- Sum of a numeric global over all threads.
function M.total(name)
   local sum = 0
   for _, thread in ipairs(M.threads) do
      sum = sum + (thread:get(name) or 0)
   end
   return sum
end

-- Before done() runs, wrk "corrects" its latency histogram for coordinated omission: for every
-- sample above twice the mean interval e = duration / (requests / connections) it adds made-up
-- samples at n - e, n - 2e, ... down to e (stats_correct in wrk 4.x's stats.c). In a closed loop
-- that turns one slow answer in fifty into a p90 of hundreds of ms, so the figures would not be
-- comparable with those of the bench's own client. This reads wrk's histogram (one bucket per
-- microsecond, laid out as wrk_stats_head then uint64_t data[]) and takes the made-up samples back
-- out, largest first: the ones at n are exactly the real samples at n + e, n + 2e, ...
-- Returns the real samples as ascending {value, count} pairs with their total, or nil when the
-- histogram does not add up (another wrk version): then the caller keeps wrk's own figures.
local function real_samples(latency, summary, connections)
   local head = ffi.cast("wrk_stats_head **", latency)[0]
   if head.count == 0 then return {}, 0 end
   local min, max = tonumber(head.min), tonumber(head.max)
   if max ~= latency.max or min ~= latency.min or max >= tonumber(head.limit) then return nil end
   local per_connection = math.floor(summary.requests / connections)
   local e = per_connection > 0 and math.floor(summary.duration / per_connection) or math.huge
   if e < 1 then return nil end
   local data = ffi.cast("uint64_t *", head) + 4
   local made_up = {} -- by n % e: real samples seen so far (above n) that added one at n
   local descending, total = {}, 0
   for n = max, min, -1 do
      local count = tonumber(data[n])
      if count > 0 and n > e then
         local class = n % e
         local above = made_up[class] or 0
         count = count - above
         if count < 0 then return nil end
         made_up[class] = above + count
      end
      if count > 0 then
         descending[#descending + 1] = { n, count }
         total = total + count
      end
   end
   -- Every answer is recorded once, or counted as a timeout when slower than --timeout.
   if total + summary.errors.timeout ~= summary.requests then return nil end
   local samples = {}
   for i = #descending, 1, -1 do samples[#samples + 1] = descending[i] end
   return samples, total
end

-- p50 .. p999, max and mean of ascending {value, count} pairs.
local function figures(samples, total)
   local out = { max = 0, mean = 0 }
   local quantiles = { p50 = 0.5, p90 = 0.9, p95 = 0.95, p99 = 0.99, p999 = 0.999 }
   for name in pairs(quantiles) do out[name] = 0 end
   if total == 0 then return out end
   local seen, sum = 0, 0
   for _, sample in ipairs(samples) do
      local value, count = sample[1], sample[2]
      for name, q in pairs(quantiles) do
         if seen < math.ceil(q * total) and seen + count >= math.ceil(q * total) then
            out[name] = value
         end
      end
      seen, sum = seen + count, sum + value * count
   end
   out.max, out.mean = samples[#samples][1], sum / total
   return out
end

function M.done(summary, latency)
   -- Scripts split their work by thread id, so a wrong thread count on their command line would
   -- silently skip (or double) a share of it: refuse to report a run like that.
   for _, thread in ipairs(M.threads) do
      local declared = thread:get("threads_declared")
      if declared ~= #M.threads then
         io.stderr:write(string.format(
            "script was told %s threads but wrk ran %d: pass wrk's -t after --\n",
            tostring(declared), #M.threads))
         os.exit(2)
      end
   end

   local samples, total = real_samples(latency, summary, M.threads[1]:get("connections_declared"))
   local l
   if samples then
      l = figures(samples, total)
   else
      local p = function(q) return latency:percentile(q) end
      l = { p50 = p(50), p90 = p(90), p95 = p(95), p99 = p(99), p999 = p(99.9),
            max = latency.max, mean = latency.mean }
      if l.mean ~= l.mean then l.mean = 0 end -- NaN; JSON has none
   end

   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},'
         .. '"latency_corrected":%s,"starved":%d,"sent_once":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      l.p50, l.p90, l.p95, l.p99, l.p999, l.max, l.mean,
      tostring(samples == nil), M.total("starved"), M.total("sent_once")))
   io.stdout:flush()
end

return M
