"""API key checks for the gateway's handlers (the key ring is in memory: no database call)."""

from __future__ import annotations

from aiohttp import web

from fnplat.domain import ApiKey, KeyScope
from fnplat.security import KeyRing, authorize, extract_presented_key


def authenticate(request: web.Request, keyring: KeyRing, scope: KeyScope) -> ApiKey:
    """Return the caller's key; 401 when none is presented, 403 when it is wrong or lacks the scope.

    `admin` keys may do everything; `invoke` keys may only invoke functions.
    """
    key = keyring.authenticate(extract_presented_key(request.headers))
    authorize(key, scope)
    return key
