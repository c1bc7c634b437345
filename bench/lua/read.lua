-- wrk script: GET /v2.1/servers/{id} round-robin over BENCH_IDS (see servers.lua).
dofile(os.getenv("BENCH_LUA_DIR") .. "/servers.lua")
round_robin("GET", "", {["Accept"] = "application/json"})
