"""The gateway's TLS server context (FNPLAT_TLS_CERT / FNPLAT_TLS_KEY)."""

from __future__ import annotations

import ssl
from pathlib import Path

from fnplat.errors import InvalidParameter


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2 or later with Python's default (modern) ciphers, serving `cert` with `key`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        # The operator's own start-up error: naming their files is what they need.
        raise InvalidParameter(
            f"FNPLAT_TLS_CERT={cert} / FNPLAT_TLS_KEY={key}: cannot load the certificate and key: {exc}"
        ) from None
    return context
