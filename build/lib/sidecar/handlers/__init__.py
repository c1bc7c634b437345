"""The only aiohttp-aware code: Nova routes, the Statelock API, ops endpoints."""
