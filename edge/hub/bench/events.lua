-- wrk script: POST one logout event per request, each for a session id of its own, to
-- the events API (the revocation service's or the hub's). Arguments after `--`: the
-- events:write key, the events' `exp` (Unix seconds), a prefix for the session ids.
local key, exp, prefix = "", "0", "bench"
local n = 0

function init(args)
  key, exp, prefix = args[1], args[2], args[3] or prefix
end

function request()
  n = n + 1
  local body = '{"kind":"logout","sid":"' .. prefix .. "-" .. n .. '","exp":' .. exp .. "}"
  return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
