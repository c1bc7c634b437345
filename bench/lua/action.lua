-- wrk script: the state-changing path. POST /v2.1/servers/{id}/action round-robin
-- over BENCH_IDS with the body BENCH_BODY (default a soft reboot), as the noauth
-- user BENCH_TOKEN (default alice:demo). Prints one BENCHJSON line.
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do ids[#ids + 1] = id end
local token = os.getenv("BENCH_TOKEN") or "alice:demo"
local body = os.getenv("BENCH_BODY") or '{"reboot": {"type": "SOFT"}}'
local reqs = {}
local n = 0

function init(args)
  for k, id in ipairs(ids) do
    reqs[k] = wrk.format("POST", "/v2.1/servers/" .. id .. "/action",
                         {["X-Auth-Token"] = token, ["Content-Type"] = "application/json",
                          ["Accept"] = "application/json"}, body)
  end
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
