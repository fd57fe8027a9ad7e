-- wrk script: a different bearer token on every request, read from the file named
-- after `--` (one token a line), starting after the index given as the second argument
-- (default 0) and cycling when the list runs out.
local tokens = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  i = (tonumber(args[2]) or 0) % #tokens
end

function request()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
