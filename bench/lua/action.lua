-- wrk script: the state-changing path. POST /v2.1/servers/{id}/action round-robin
-- over BENCH_IDS (see servers.lua) with the body BENCH_BODY (default a soft reboot).
dofile(os.getenv("BENCH_LUA_DIR") .. "/servers.lua")
round_robin("POST", "/action", {["Content-Type"] = "application/json", ["Accept"] = "application/json"},
            os.getenv("BENCH_BODY") or '{"reboot": {"type": "SOFT"}}')
