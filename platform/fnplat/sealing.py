"""Function environments encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256) from
`cryptography`, with MultiFernet so retired keys still decrypt during a key rotation.

The store seals an environment when it writes a version and opens it when it reads one
(`fnplat/store/repository.py`): everything above the store holds plain values in memory, and
nothing on the invocation path decrypts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from fnplat.errors import SecretKeyError
from fnplat.secret_keys import SecretKeys


class EnvironmentCipher:
    __slots__ = ("_all", "_current", "source")

    def __init__(self, keys: SecretKeys) -> None:
        self._current = Fernet(keys.current)
        self._all = MultiFernet([self._current, *(Fernet(key) for key in keys.retired)])
        self.source = keys.source

    def seal(self, environment: Mapping[str, str]) -> str:
        """The environment as a token (ASCII), encrypted with the current key."""
        plain = json.dumps(dict(environment), separators=(",", ":"), sort_keys=True).encode()
        return self._current.encrypt(plain).decode("ascii")

    def open(self, token: str) -> dict[str, str]:
        """The environment in a token sealed with the current or a retired key."""
        try:
            plain = self._all.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretKeyError(
                f"a function environment in the store cannot be decrypted with the key from "
                f"{self.source}: it was written with another key (several processes sharing a "
                "database need the same key; during a rotation the previous key belongs in "
                "FNPLAT_SECRET_OLD_KEYS)"
            ) from None
        environment = json.loads(plain)
        if not isinstance(environment, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
        ):
            raise SecretKeyError("a decrypted function environment is not a mapping of strings")
        return environment

    def is_current(self, token: str) -> bool:
        """Whether the token was sealed with the current key (else it needs `reseal`)."""
        try:
            self._current.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def reseal(self, token: str) -> str:
        """The same environment sealed with the current key (SecretKeyError if no key opens it)."""
        return self.seal(self.open(token))
