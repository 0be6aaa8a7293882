"""A controller's cache of function versions, filled from the store on first use.

Versions are immutable once written (a deploy makes a new number), so an entry never goes stale:
the warm path reads memory only, and a new version costs one store read on its first invocation
on this node.
"""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy.orm import Session, sessionmaker

from fnplat.domain import FunctionVersion
from fnplat.errors import NotFound
from fnplat.store import repository
from fnplat.store.calls import store_call
from fnplat.store.db import transaction

MAX_CACHED = 10_000


class VersionCache:
    def __init__(
        self, sessions: sessionmaker[Session], deadline_s: float, max_cached: int = MAX_CACHED
    ) -> None:
        self._sessions = sessions
        self._deadline = deadline_s
        self._max = max_cached
        self._versions: OrderedDict[tuple[str, int], FunctionVersion] = OrderedDict()

    async def get(self, name: str, number: int) -> FunctionVersion:
        key = (name, number)
        version = self._versions.get(key)
        if version is not None:
            self._versions.move_to_end(key)
            return version
        found = await store_call(lambda: self._read(name, number), self._deadline, f"version {name}:{number}")
        if found is None:
            raise NotFound(f"Function not found: {name} version {number}")
        self._versions[key] = found
        if len(self._versions) > self._max:
            self._versions.popitem(last=False)
        return found

    def forget_function(self, name: str) -> None:
        for key in [k for k in self._versions if k[0] == name]:
            del self._versions[key]

    def _read(self, name: str, number: int) -> FunctionVersion | None:
        with transaction(self._sessions) as session:
            return repository.get_version(session, name, number)
