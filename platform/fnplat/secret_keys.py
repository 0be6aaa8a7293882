"""The keys that encrypt function environments: where they come from, their format, and the key
file made on first start.

The current key (it encrypts; it and the retired ones decrypt) is the first of:
FNPLAT_SECRET_KEY, the first line of FNPLAT_SECRET_KEY_FILE, the first line of
`<data dir>/secret.key` (created 0600 on first start when the store holds nothing encrypted).
Retired keys come from FNPLAT_SECRET_OLD_KEYS and the further lines of the key file. A key is
a Fernet key: 32 random bytes in url-safe base64, 44 characters; `GENERATE_HINT` makes one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fnplat.config import SecretsSettings
from fnplat.errors import SecretKeyError

GENERATE_HINT = (
    "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{43}=$")


@dataclass(frozen=True, slots=True)
class SecretKeys:
    current: bytes = field(repr=False)
    retired: tuple[bytes, ...] = field(repr=False)
    source: str  # where the current key came from, for messages (never the key itself)


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def parse_key(text: str, source: str) -> bytes:
    """A key as Fernet takes it; SecretKeyError naming `source` (never the value) otherwise."""
    key = text.strip()
    try:
        valid = bool(_KEY_RE.match(key)) and len(base64.urlsafe_b64decode(key)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise SecretKeyError(
            f"{source} is not a valid key: it must be 32 random bytes in url-safe base64 "
            f"(44 characters). Make one with: {GENERATE_HINT}"
        )
    return key.encode("ascii")


def load_keys(settings: SecretsSettings, default_file: Path, *, may_create: bool) -> SecretKeys:
    """The configured keys. `default_file` is created when no key is configured, it does not
    exist and `may_create` (the caller knows nothing was encrypted with a lost key)."""
    retired = [
        parse_key(key, f"FNPLAT_SECRET_OLD_KEYS (item {number})")
        for number, key in enumerate(settings.old_keys, 1)
    ]
    if settings.key:
        return SecretKeys(parse_key(settings.key, "FNPLAT_SECRET_KEY"), tuple(retired), "FNPLAT_SECRET_KEY")
    path = Path(settings.key_file).expanduser() if settings.key_file else default_file
    if not settings.key_file and not default_file.exists():
        if not may_create:
            raise SecretKeyError(
                f"no secret key: {default_file} does not exist and FNPLAT_SECRET_KEY is not set, "
                "but the store holds encrypted function environments. Restore the key file, "
                "or set FNPLAT_SECRET_KEY or FNPLAT_SECRET_KEY_FILE to the key they were written with."
            )
        create_key_file(default_file)
    first, *more = read_key_file(path)
    return SecretKeys(first, (*more, *retired), str(path))


def read_key_file(path: Path) -> list[bytes]:
    """The keys of a key file: one per line, the current one first; blank and # lines skipped."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise SecretKeyError(f"secret key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII text"
        raise SecretKeyError(f"secret key file {path} cannot be read: {reason}") from None
    lines = [line.strip() for line in text.splitlines()]
    keys = [
        parse_key(line, f"line {number} of {path}")
        for number, line in enumerate(lines, 1)
        if line and not line.startswith("#")
    ]
    if not keys:
        raise SecretKeyError(f"secret key file {path} holds no key")
    return keys


def create_key_file(path: Path) -> None:
    """Write a new key to `path` (0600) unless a file is already there; never a partial file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-secret-")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(generate_key() + "\n")
            out.flush()
            os.fsync(out.fileno())
        # link, not rename: it fails if the file exists, so a concurrent start's key is never replaced.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        os.unlink(temp)
