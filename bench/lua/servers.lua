-- Shared by the wrk scripts: one request per id of BENCH_IDS (comma-separated), sent
-- round-robin as the noauth user BENCH_TOKEN (default alice:demo), and the summary
-- printed as one BENCHJSON line (report.lua).
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do ids[#ids + 1] = id end
local token = os.getenv("BENCH_TOKEN") or "alice:demo"

-- Defines wrk's init and request: METHOD /v2.1/servers/{id}SUFFIX with HEADERS,
-- the token and BODY (nil for none).
function round_robin(method, suffix, headers, body)
  local reqs = {}
  local n = 0
  headers["X-Auth-Token"] = token

  function init(args)
    for k, id in ipairs(ids) do
      reqs[k] = wrk.format(method, "/v2.1/servers/" .. id .. suffix, headers, body)
    end
  end

  function request()
    n = n % #reqs + 1
    return reqs[n]
  end
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
