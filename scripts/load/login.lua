-- Password logins: POST a password grant to the URL wrk was given, as LOAD_USERNAME with
-- LOAD_PASSWORD (form-encoded; both are plain ASCII in scripts/load.py).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local function form(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("LOAD_CONTENT_TYPE") or "application/x-www-form-urlencoded"
if os.getenv("LOAD_JSON") then
  wrk.body = string.format('{"username": "%s", "password": "%s"}',
    os.getenv("LOAD_USERNAME"), os.getenv("LOAD_PASSWORD"))
else
  wrk.body = "grant_type=password&username=" .. form(os.getenv("LOAD_USERNAME")) ..
    "&password=" .. form(os.getenv("LOAD_PASSWORD"))
end
