-- Refresh grants. Every refresh token can be used once, so each wrk thread keeps a pool of
-- live tokens: a request takes one, its answer puts the successor back. The pool starts with
-- this thread's share of the tokens in LOAD_TOKENS (one per line), more than its connections.
-- LOAD_STYLE=simplejwt sends simplejwt's JSON body and reads its "refresh" field instead.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end

local pool, simplejwt = {}, os.getenv("LOAD_STYLE") == "simplejwt"
function init(args)
  local i, n = 0, tonumber(os.getenv("LOAD_THREADS"))
  for line in io.lines(os.getenv("LOAD_TOKENS")) do
    if i % n == index then table.insert(pool, line) end
    i = i + 1
  end
end

function request()
  local token = table.remove(pool) or "exhausted"
  if simplejwt then
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"},
      '{"refresh": "' .. token .. '"}')
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"},
    "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local next = body:match(simplejwt and '"refresh"%s*:%s*"([^"]+)"' or '"refresh_token"%s*:%s*"([^"]+)"')
  if next then table.insert(pool, next) end
end
