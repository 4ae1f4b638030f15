-- wrk script of bench/booking-vs-peer.ts: POST a new random booking per request, count the statuses.
--
-- Environment (set by the benchmark):
--   BENCH_WRK_CUSTOMERS  file with one customer a line: "<customerId> <bearer token>"
--   BENCH_WRK_BODY       "token" (pitstop: the customer is the token's subject, sent as Authorization: Bearer)
--                        or "customer" (peer, plain: the customer id goes in the body as customerId)
--   BENCH_WRK_PATH       request path with query, e.g. /api/v1/bookings?slotCheck=atomic
--
-- Body: vehicleId "car-1", a random service type, bookingDate a random whole hour 2 h to 364 days ahead (UTC, Z).
-- done() prints one line "BENCH_RESULT {json}" with the status counts of every thread and wrk's latency
-- percentiles (microseconds, over every response).

local types = { "OIL_CHANGE", "BRAKE_SERVICE", "TIRE_CHANGE", "INSPECTION", "GENERAL_REPAIR" }
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
  table.insert(threads, thread)
end

local customers = {}
local tokens = {}
local body_mode = os.getenv("BENCH_WRK_BODY") or "customer"
local path = os.getenv("BENCH_WRK_PATH") or "/"
local hour0 = 0
statuses = {}

function init(args)
  local file = assert(io.open(assert(os.getenv("BENCH_WRK_CUSTOMERS"), "BENCH_WRK_CUSTOMERS is not set"), "r"))
  for line in file:lines() do
    local id, token = line:match("^(%S+)%s+(%S+)$")
    if id then
      table.insert(customers, id)
      table.insert(tokens, token)
    end
  end
  file:close()
  assert(#customers > 0, "no customers in BENCH_WRK_CUSTOMERS")
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
  hour0 = math.floor(os.time() / 3600) * 3600
end

function request()
  local at = hour0 + 3600 * math.random(2, 364 * 24)
  local date = os.date("!%Y-%m-%dT%H:00:00Z", at)
  local service = types[math.random(#types)]
  local n = math.random(#customers)
  local headers = { ["Content-Type"] = "application/json" }
  local body
  if body_mode == "token" then
    headers["Authorization"] = "Bearer " .. tokens[n]
    body = '{"vehicleId":"car-1","serviceType":"' .. service .. '","bookingDate":"' .. date .. '"}'
  else
    body = '{"customerId":"' .. customers[n] .. '","vehicleId":"car-1","serviceType":"' .. service
      .. '","bookingDate":"' .. date .. '"}'
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for status, n in pairs(counts) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, string.format('"%s":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"durationUs":%d,"requests":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"statuses":{%s}}\n',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
end
