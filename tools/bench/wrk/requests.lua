-- wrk script: sends the requests listed in a file (tools/bench/src/wrk/mod.rs writes it).
--
--   wrk -t T -c C -d D --timeout 10s -s requests.lua http://127.0.0.1:PORT -- FILE MODE T C
--
-- FILE: one request a line, `METHOD \t PATH \t HEADERS \t BODY`, HEADERS being `Name: value`
-- pairs joined by the byte \x1f (empty when none), BODY the raw body (possibly empty).
-- MODE:
--   once   every line is sent exactly once: thread k of T sends lines k, k+T, k+2T, ... and the
--          run ends when the last answer is in, however long -d is (-d only bounds a hung run).
--   cycle  every thread sends all the lines, round and round (so a single line works with any
--          T), until -d ends the run.
-- T and C must repeat wrk's -t and -c: a thread's Lua state cannot see them, and `once` needs
-- them to split the lines and to know when a thread's connections are all idle.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "summary.lua")
local ffi = require("ffi")

ffi.cdef [[
unsigned long pthread_self(void);
int pthread_kill(unsigned long thread, int sig);
int sigaction(int sig, const void *act, void *old);
int usleep(unsigned int usec);
]]
local SIGINT = 2

-- Per-thread globals, read by done() through thread:get.
sent_once = 0
threads_declared = nil
connections_declared = nil
marker_prefix = nil

local mode
local lines = {}    -- this thread's requests, formatted once here so request() stays cheap
local next_line = 1
local connections   -- this thread's share of C
local parked = 0    -- connections told to wait for nothing (once mode, out of lines)
local verifying     -- see request()

local function format(line)
   local method, path, headers, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
   if not method then error("not METHOD\\tPATH\\tHEADERS\\tBODY: " .. line) end
   local h = {}
   for pair in headers:gmatch("[^\31]+") do
      local name, value = pair:match("^([^:]+):%s*(.*)$")
      if not name then error("header is not `Name: value`: " .. pair) end
      h[name] = value
   end
   -- wrk.format sends Content-Length only for a non-nil body: an empty POST still says 0.
   if body == "" and (method == "GET" or method == "HEAD" or method == "DELETE") then body = nil end
   return wrk.format(method, path, h, body)
end

function setup(thread)
   common.setup(thread)
   -- setup() runs on wrk's main OS thread: remember it, the last worker to finish wakes it.
   thread:set("main_thread", tonumber(ffi.C.pthread_self()))
end

function init(args)
   local file = args[1]
   mode, threads_declared, connections_declared = args[2], tonumber(args[3]), tonumber(args[4])
   local modes = { once = true, cycle = true }
   if not (file and modes[mode] and threads_declared and connections_declared) then
      error("usage: -s requests.lua URL -- FILE once|cycle THREADS CONNECTIONS")
   end
   -- wrk gives each thread C / T connections, rounding down.
   connections = math.floor(connections_declared / threads_declared)
   local n = 0
   for line in io.lines(file) do
      if line ~= "" then
         if mode == "cycle" or n % threads_declared == id then lines[#lines + 1] = format(line) end
         n = n + 1
      end
   end
   if n == 0 then error(file .. " holds no requests") end
   -- Cycling threads start at different lines, so several lines are not sent in lockstep.
   if mode == "cycle" then next_line = id % #lines + 1 end
   marker_prefix = file .. ".done."
   os.remove(marker_prefix .. id) -- left over from an earlier run that crashed
   verifying = id == 0
end

-- wrk's main thread sleeps for all of -d and only a SIGINT cuts that short (thread:stop() just
-- ends one thread's loop), so once every thread is done the last one sends it. Threads share no
-- Lua state, so each leaves a marker file and checks for the others' after writing its own: of
-- two threads finishing together at least one sees both markers (signalling twice is harmless).
local function finish()
   wrk.thread:stop()
   io.open(marker_prefix .. id, "w"):close()
   for k = 0, threads_declared - 1 do
      local marker = io.open(marker_prefix .. k, "r")
      if not marker then return end
      marker:close()
   end
   -- wrk ignores SIGINT until all threads are started: a run that finishes before then (a few
   -- lines on fast connections) waits for the handler rather than losing the signal.
   local old = ffi.new("void *[64]") -- room for any struct sigaction; sa_handler comes first
   for _ = 1, 5000 do
      ffi.C.sigaction(SIGINT, nil, old)
      if tonumber(ffi.cast("intptr_t", old[0])) ~= 1 then break end -- 1 is SIG_IGN
      ffi.C.usleep(1000)
   end
   ffi.C.pthread_kill(main_thread, SIGINT)
end

function request()
   if verifying then
      -- wrk calls request() once in thread 0 before the run, to check that its output parses
      -- and count how many requests it pipelines: that call must not use up a line.
      verifying = false
      return lines[1] or wrk.format("GET", "/healthz")
   end
   if mode == "cycle" then
      local request = lines[next_line]
      next_line = next_line % #lines + 1
      return request
   end
   local request = lines[next_line]
   if request then
      next_line = next_line + 1
      sent_once = sent_once + 1
      return request
   end
   -- Out of lines. wrk asks a connection for its next request only once its previous answer is
   -- in, so returning "" (written as nothing) parks this connection without sending anything,
   -- and when all of this thread's connections are parked, no answer is outstanding and the
   -- thread can stop without abandoning any request. A parked connection the server closes for
   -- idleness (keep-alive timeout, 5 s in actix) reconnects and comes back here, counting twice:
   -- then the thread stops early and its in-flight requests are abandoned (the server still
   -- completes them, after wrk has reported).
   parked = parked + 1
   if parked == connections then finish() end
   return ""
end

function done(summary, latency, requests)
   for _, thread in ipairs(common.threads) do
      local prefix = thread:get("marker_prefix")
      if prefix then os.remove(prefix .. thread:get("id")) end
   end
   common.done(summary, latency, requests)
end
