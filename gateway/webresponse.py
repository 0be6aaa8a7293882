"""Turns the pure `HttpResponse` values of proxy_event/responses into aiohttp responses."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from fnplat.gateway.proxy_event import HttpResponse


def to_web_response(response: HttpResponse) -> web.Response:
    # A multidict keeps repeated headers (one set-cookie per cookie).
    return web.Response(status=response.status, headers=CIMultiDict(response.headers), body=response.body)
