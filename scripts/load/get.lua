-- GET the URL wrk was given (JWKS, PEM, metadata).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")
