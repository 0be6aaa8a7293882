"""The in-memory view of what is deployed: latest versions, the route table and the key ring.

The hot path (route match, key check, version lookup) reads only this; the management API
writes the store first and then updates the catalog, so no request needs a database round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fnplat.domain import ApiKey, FunctionVersion, Route
from fnplat.gateway.routing import RouteTable
from fnplat.security import KeyRing

log = logging.getLogger(__name__)


class Catalog:
    def __init__(self) -> None:
        self._latest: dict[str, FunctionVersion] = {}
        self._routes: dict[str, tuple[Route, ...]] = {}  # by function name
        self.route_table: RouteTable = RouteTable.build(())
        self.keyring: KeyRing = KeyRing(())

    def load(
        self, versions: Iterable[FunctionVersion], routes: Iterable[Route], keys: Iterable[ApiKey]
    ) -> None:
        self._latest = {v.function_name: v for v in versions}
        by_function: dict[str, list[Route]] = {}
        for route in routes:
            by_function.setdefault(route.function_name, []).append(route)
        self._routes = {name: tuple(rs) for name, rs in by_function.items()}
        self._rebuild_routes()
        self.keyring = KeyRing(keys)

    def latest(self, name: str) -> FunctionVersion | None:
        return self._latest.get(name)

    def functions(self) -> list[FunctionVersion]:
        return sorted(self._latest.values(), key=lambda v: v.function_name)

    def routes_of(self, name: str) -> tuple[Route, ...]:
        return self._routes.get(name, ())

    def all_routes(self) -> list[Route]:
        return [r for name in sorted(self._routes) for r in self._routes[name]]

    def put_function(self, version: FunctionVersion, routes: Iterable[Route]) -> None:
        self._latest[version.function_name] = version
        self._routes[version.function_name] = tuple(routes)
        self._rebuild_routes()

    def remove_function(self, name: str) -> None:
        self._latest.pop(name, None)
        self._routes.pop(name, None)
        self._rebuild_routes()

    def put_key(self, key: ApiKey) -> None:
        self.keyring = self.keyring.with_key(key)

    def revoke_key(self, key_id: str) -> None:
        self.keyring = self.keyring.without(key_id)

    def _rebuild_routes(self) -> None:
        # Rebuilt as a whole and swapped in: readers never see a half-updated table. Never raises:
        # the store guarantees valid, conflict-free routes (unique shape), and were a row ever to
        # break that, the gateway serves every other route rather than failing to start.
        table, rejected = RouteTable.build_skipping(r for rs in self._routes.values() for r in rs)
        for route, reason in rejected:
            log.error("route %s of %s is not served: %s", route.route_key, route.function_name, reason)
        self.route_table = table
