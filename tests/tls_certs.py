"""Self-signed certificates for TLS tests, made with the openssl CLI (no Python dependency)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SelfSigned:
    cert: Path  # also the CA a client must trust
    key: Path


def self_signed_for_loopback(directory: Path, name: str = "gateway") -> SelfSigned:
    """A certificate for 127.0.0.1 (and localhost), valid for a day, key unencrypted."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return SelfSigned(cert, key)
