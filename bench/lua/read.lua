-- wrk script: GET /v2.1/servers/{id} round-robin over BENCH_IDS (comma-separated),
-- as the noauth user BENCH_TOKEN (default alice:demo). Prints one BENCHJSON line.
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do ids[#ids + 1] = id end
local token = os.getenv("BENCH_TOKEN") or "alice:demo"
local reqs = {}
local n = 0

function init(args)
  for k, id in ipairs(ids) do
    reqs[k] = wrk.format("GET", "/v2.1/servers/" .. id,
                         {["X-Auth-Token"] = token, ["Accept"] = "application/json"})
  end
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
