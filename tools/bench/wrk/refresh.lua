-- wrk script: rotates refresh tokens against POST /api/v1/auth/refresh until -d ends the run.
--
--   wrk -t T -c C -d D --timeout 10s -s refresh.lua http://127.0.0.1:PORT -- FILE T C
--
-- FILE: one refresh token a line, at least C of them. Thread k of T takes lines k, k+T, ... as its
-- pool. T and C must repeat wrk's -t and -c, which a thread's Lua state cannot see.
--
-- Each token is used exactly once, since the server revokes the whole session when a refresh
-- token comes back: a request takes the oldest token from the thread's queue and its answer puts
-- the new one back. A failed refresh loses its token; when a connection then finds the queue
-- empty it is counted as `starved` and parked (see request()).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "summary.lua")

setup = common.setup
done = common.done

-- Per-thread globals, read by done() through thread:get.
starved = 0
threads_declared = nil
connections_declared = nil

local queue, head, tail = {}, 1, 0 -- FIFO: queue[head .. tail]
local headers = { ["Content-Type"] = "application/json" }
local verifying -- see request()

local function push(token)
   tail = tail + 1
   queue[tail] = token
end

local function pop()
   if head > tail then return nil end
   local token = queue[head]
   queue[head] = nil
   head = head + 1
   return token
end

local function refresh(token)
   return wrk.format("POST", "/api/v1/auth/refresh", headers, '{"refresh_token":"' .. token .. '"}')
end

function init(args)
   local file = args[1]
   threads_declared, connections_declared = tonumber(args[2]), tonumber(args[3])
   if not (file and threads_declared and connections_declared) then
      error("usage: -s refresh.lua URL -- FILE THREADS CONNECTIONS")
   end
   local n = 0
   for line in io.lines(file) do
      if line ~= "" then
         if n % threads_declared == id then push(line) end
         n = n + 1
      end
   end
   verifying = id == 0
end

function request()
   if verifying then
      -- wrk calls request() once in thread 0 before the run, to check that its output parses:
      -- that request is never sent, so it must not use up a token.
      verifying = false
      return refresh("verify")
   end
   local token = pop()
   if token then return refresh(token) end
   -- No token (only after failures). Returning "" writes nothing, so this connection waits for an
   -- answer that never comes: it sits out the rest of the run instead of padding the figures with
   -- cheap filler requests. If the server closes it for idleness it reconnects and comes back here.
   starved = starved + 1
   return ""
end

-- Defining response() makes wrk collect every answer's headers and body for Lua; that is the cost
-- of chaining the tokens.
function response(status, headers, body)
   local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
   if token then push(token) end
end
