"""fnplat.gateway: the aiohttp HTTP front door (routes, keys, invoke and management APIs)."""
