-- wrk sends distinct, pre-formatted HTTP requests, each exactly once (benchmarks.ecr_replay).
--
-- Arguments (after `--`): the share files' prefix, the number of threads, and the period
-- between a thread's sends in milliseconds (0: as fast as its connections answer).
-- Thread i reads `<prefix>.<i>`: a first line of request lengths, then the requests' bytes.
--
-- wrk's own clock must cover exactly those requests, so:
-- * no thread sends before every thread has loaded its share (a thread's `init` runs in
--   wrk's main thread, after the threads before it already run): a thread's first `delay()`
--   sleeps until they have;
-- * `delay()`, which wrk asks before every send, hands out the thread's requests one by one
--   and, once they are all handed out, parks the connection for an hour;
-- * `request()` returns the request `delay()` handed out (wrk's own check of the script calls
--   it once before the thread starts: that call consumes nothing);
-- * once a thread has every answer it stops, and the last thread to stop wakes wrk's main
--   thread (SIGINT, which wrk takes as "stop"), whose clock otherwise runs to `-d`.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } cargobay_timespec;
int clock_gettime(int clock, cargobay_timespec *tp);
typedef union { char size[32]; long align; } cargobay_sem_t;
int sem_init(cargobay_sem_t *sem, int pshared, unsigned int value);
int sem_post(cargobay_sem_t *sem);
int sem_getvalue(cargobay_sem_t *sem, int *value);
unsigned long pthread_self(void);
int pthread_kill(unsigned long thread, int sig);
int usleep(unsigned int usec);
]])

local SIGINT = 2
local PARK_MS = 3600000

local now_ts = ffi.new("cargobay_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local value = ffi.new("int[1]")
local function count(sem)
  ffi.C.sem_getvalue(sem, value)
  return value[0]
end

-- In wrk's main thread: the semaphores every thread shares (loaded, finished) and the
-- threads, for `done()`.
local threads = {}
local semaphores = nil

function setup(thread)
  if semaphores == nil then
    semaphores = ffi.new("cargobay_sem_t[2]")
    ffi.C.sem_init(semaphores[0], 0, 0)
    ffi.C.sem_init(semaphores[1], 0, 0)
  end
  threads[#threads + 1] = thread
  thread:set("id", #threads)
  thread:set("semaphores_at", tonumber(ffi.cast("uintptr_t", semaphores)))
  thread:set("main_thread", tonumber(ffi.C.pthread_self()))
end

-- In each thread's own state (globals, so that `done()` can read them). The share stays one
-- string: a request is cut from it when sent (a copy of the whole share's requests would
-- double the thread's memory).
data, starts, share, reserved, sent, answered, non2xx, load_ms = "", {}, 0, 0, 0, 0, 0, 0
first_error, unasked = "", 0
local nthreads, period, slot, started = 0, 0, nil, false
local loaded, finished

function init(args)
  local began = now_ms()
  local file = assert(io.open(args[1] .. "." .. id, "rb"))
  data = file:read("*a")
  file:close()
  local newline = data:find("\n", 1, true)
  local at = newline + 1
  for length in data:sub(1, newline - 1):gmatch("%d+") do
    starts[#starts + 1] = at
    at = at + tonumber(length)
  end
  assert(at == #data + 1, "share file " .. args[1] .. "." .. id .. " is truncated")
  share = #starts
  starts[share + 1] = at
  nthreads = tonumber(args[2])
  period = tonumber(args[3])
  collectgarbage() -- the read's buffer (as large as the share): the next thread loads now
  local shared = ffi.cast("cargobay_sem_t *", semaphores_at)
  loaded, finished = shared, shared + 1
  load_ms = now_ms() - began
  ffi.C.sem_post(loaded)
end

function delay()
  if not started then
    -- Nothing of this thread's is in flight yet: it may sleep until the others have loaded.
    -- (Returning a wait instead would not do: after it, wrk sends without asking again.)
    while count(loaded) < nthreads do
      ffi.C.usleep(200)
    end
    started = true
  end
  if reserved >= share then
    return PARK_MS
  end
  reserved = reserved + 1
  if period == 0 then
    return 0
  end
  local now = now_ms()
  slot = (slot or now) + period
  local wait = slot - now
  if wait < 0 then
    return 0
  end
  return math.floor(wait + 0.5)
end

function request()
  if sent < reserved then
    sent = sent + 1
    return data:sub(starts[sent], starts[sent + 1] - 1)
  end
  if not started then -- wrk's check of the script
    return data:sub(starts[1], starts[2] - 1)
  end
  -- Asked without `delay()`: wrk re-opened a connection that failed (a read error) and sends
  -- again at once. The request it carried is lost or answered unseen, and sending another
  -- would repeat or steal one: send nothing, and end the run, which the counts then fail.
  unasked = unasked + 1
  wrk.thread:stop()
  ffi.C.pthread_kill(main_thread, SIGINT)
  return ""
end

function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_error == "" then
      first_error = status .. " " .. body:sub(1, 300):gsub("%s+", " ")
    end
  end
  if answered == share then
    wrk.thread:stop()
    ffi.C.sem_post(finished)
    if count(finished) == nthreads then
      ffi.C.pthread_kill(main_thread, SIGINT)
    end
  end
end

function done(summary, latency, rates)
  local totals = { share = 0, sent = 0, answered = 0, non2xx = 0, unasked = 0 }
  local load, first_error = 0, ""
  for _, thread in ipairs(threads) do
    if first_error == "" then
      first_error = thread:get("first_error")
    end
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
    load = math.max(load, thread:get("load_ms"))
  end
  local status = io.open("/proc/self/status")
  local peak = status and status:read("*a"):match("VmHWM:%s*(%d+)") or "0"
  if status then
    status:close()
  end
  io.write(
    string.format(
      "replay: share %d sent %d answered %d non2xx %d unasked %d load_ms %.1f peak_kib %s\n",
      totals.share,
      totals.sent,
      totals.answered,
      totals.non2xx,
      totals.unasked,
      load,
      peak
    )
  )
  if first_error ~= "" then
    io.write("replay: first non-2xx answer: " .. first_error .. "\n")
  end
end
