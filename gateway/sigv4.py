"""AWS Signature Version 4: accept requests that AWS SDKs and the CLI sign with an fnplat key.

A client configured with an fnplat key as its credentials (access key id = the key id, secret
access key = the key's signing secret) signs for service `lambda` in any region; we recompute
the signature as AWS does and compare in constant time:

- `Authorization: AWS4-HMAC-SHA256 Credential=ID/YYYYMMDD/REGION/lambda/aws4_request,
  SignedHeaders=a;b, Signature=HEX`; anything else malformed → 400 IncompleteSignatureException.
- `X-Amz-Date` (`20240515T120000Z`) is required and signed, and so is `host`; the credential's
  date is the X-Amz-Date's day; the time is within 5 minutes of ours (either way), else 403
  `Signature expired` / `Signature not yet current`: a captured request cannot be replayed after
  the window (within it a replay is accepted, as by AWS: an identical retry is legitimate).
- The payload hash is the sha256 of the body; an `x-amz-content-sha256` header must equal it
  (`UNSIGNED-PAYLOAD` and streaming payloads are refused: the body is always covered).
- Canonical URI: the path as received, dot segments and repeated slashes removed, then
  percent-encoded again (services other than S3 double-encode: the `%3A` of a qualified function
  name or ARN in the path is signed as `%253A`). Canonical query: every name and value decoded and
  re-encoded (RFC 3986 unreserved characters kept), sorted by name, then value. Canonical headers:
  the signed ones, values trimmed with inner whitespace collapsed, repeats joined with `,`.
- The service must be `lambda`; the region is not checked (one fnplat answers to every region).
- Unknown key id, or a key with no signing secret → 403 UnrecognizedClientException; any other
  mismatch → 403 InvalidSignatureException. Presigned URLs are not supported.

Callers pass the raw query string (`request.raw_path.partition("?")[2]` in aiohttp:
`request.query_string` is decoded) and the body (at most the request limit, already read).

Which credential a request presents is `credential_kind`: an `x-api-key` header decides alone
(clients that add it to an SDK signing with dummy credentials keep working), then a SigV4
`Authorization`, then `Authorization: Bearer`.

Where the secret comes from is the `secret_for(key_id) -> bytes | None` lookup. The key ring
stores only a hash of each key's secret (enough for x-api-key, not for HMAC), so SigV4 needs the
secret itself. Proposed storage: a key gets a signing secret when it is created with SigV4
enabled (the default for new keys); it is stored encrypted with the platform's secret key (the
Fernet encryption being added for function environments), decrypted into the in-memory key ring
at load (the hot path never touches the database), and shown once together with the key.
Keys created before have none: `secret_for` returns None and SigV4 answers
UnrecognizedClientException (`x-api-key` keeps working for them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, unquote

from fnplat.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

SecretLookup = Callable[[str], bytes | None]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lambda"
TERMINATOR = "aws4_request"
MAX_SKEW_S = 300
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_HEADER_LIST_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+(;[!#$%&'*+\-.^_`|~0-9a-z]+)*$")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the signature covers, as received."""

    method: str
    raw_path: str  # percent-encoded as sent, without the query string
    raw_query: str  # as sent, without "?"
    headers: Sequence[tuple[str, str]]  # every header line, repeats kept
    body: bytes


@dataclass(frozen=True, slots=True)
class SigV4Identity:
    """A verified signature: who signed, for which region, when."""

    access_key_id: str
    region: str
    signed_at: int  # epoch seconds of X-Amz-Date


@dataclass(frozen=True, slots=True)
class SigV4Authorization:
    """The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: str
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def credential_kind(headers: Mapping[str, str]) -> Literal["api_key", "sigv4"] | None:
    """Which credential decides the request (`headers` looked up case-insensitively)."""
    api_key = headers.get("x-api-key")
    if api_key is not None and api_key.strip():
        return "api_key"
    authorization = headers.get("authorization", "").lstrip()
    if authorization.startswith(ALGORITHM + " "):
        return "sigv4"
    if authorization[:7].lower() == "bearer ":
        return "api_key"
    return None


def parse_authorization(value: str) -> SigV4Authorization:
    """The parts of a SigV4 Authorization header; IncompleteSignature naming what is missing."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(f"Unsupported authorization type, expected {ALGORITHM}")
    parts: dict[str, str] = {}
    for component in rest.split(","):
        name, sep, part = component.strip().partition("=")
        if sep and name not in parts:
            parts[name] = part.strip()
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not parts.get(name)]
    if missing:
        raise IncompleteSignature(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        )
    credential = parts["Credential"].rsplit("/", 4)
    if len(credential) != 5 or not all(credential):
        raise IncompleteSignature(
            "Credential must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request"
        )
    signed_headers, signature = parts["SignedHeaders"], parts["Signature"]
    if not _HEADER_LIST_RE.match(signed_headers):
        raise IncompleteSignature("SignedHeaders must be lower-case header names separated by ';'")
    if not _HEX64_RE.match(signature):
        raise IncompleteSignature("Signature must be 64 lower-case hexadecimal characters")
    access_key_id, date, region, service, terminator = credential
    return SigV4Authorization(access_key_id, date, region, service, terminator, signed_headers, signature)


# --- the canonical request (exported for tests and for signing in our own clients) ------------


def canonical_uri(raw_path: str) -> str:
    """The received path, normalised as AWS does for services other than S3, encoded once more."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~")


def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _trimmed(value: str) -> str:
    return " ".join(value.split())


def headers_by_name(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Lower-case name → its values in order (one pass over the request's headers)."""
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(name.lower(), []).append(value)
    return by_name


def canonical_headers(by_name: Mapping[str, list[str]], signed: Sequence[str]) -> str | None:
    """`name:value\\n` for each signed header in order; None when a signed header is absent."""
    lines: list[str] = []
    for name in signed:
        values = by_name.get(name)
        if not values:
            return None
        lines.append(f"{name}:{','.join(_trimmed(v) for v in values)}\n")
    return "".join(lines)


@lru_cache(maxsize=1024)  # one derivation per key, day and region instead of four HMACs a request
def signing_key(secret: bytes, date: str, region: str, service: str) -> bytes:
    key = hmac.new(b"AWS4" + secret, date.encode(), hashlib.sha256).digest()
    for part in (region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


# --- verification -----------------------------------------------------------------------------


class SigV4Verifier:
    """Verifies SigV4 signatures for one service against `secret_for(access_key_id)`."""

    def __init__(
        self,
        secret_for: SecretLookup,
        *,
        service: str = SERVICE,
        clock: Callable[[], float] = time.time,
        max_skew: int = MAX_SKEW_S,
    ) -> None:
        self._secret_for = secret_for
        self._service = service
        self._clock = clock
        self._max_skew = max_skew

    def verify(self, request: SignedRequest) -> SigV4Identity:
        """The signer's identity, or the AWS error to answer (module docstring)."""
        headers = headers_by_name(request.headers)
        authorization = _first(headers, "authorization")
        if authorization is None or not authorization.strip():
            raise MissingAuthenticationToken("Missing Authentication Token")
        auth = parse_authorization(authorization)
        amz_date = _first(headers, "x-amz-date")
        if amz_date is None:
            raise IncompleteSignature("Authorization header requires existence of a 'X-Amz-Date' header.")
        amz_date = amz_date.strip()
        signed_at = _parse_amz_date(amz_date)
        self._check_scope(auth, amz_date)
        signed = auth.signed_headers.split(";")
        if "host" not in signed:
            raise InvalidSignature("'Host' must be a 'SignedHeader' in the AWS Authorization.")
        if "x-amz-date" not in signed:
            raise InvalidSignature("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
        self._check_time(amz_date, signed_at)
        secret = self._secret_for(auth.access_key_id)
        if secret is None:
            raise UnrecognizedClient("The security token included in the request is invalid.")
        payload_hash = hashlib.sha256(request.body).hexdigest() if request.body else EMPTY_SHA256
        declared = _first(headers, "x-amz-content-sha256")
        if declared is not None and not _HEX64_RE.match(declared.strip().lower()):
            raise InvalidSignature(
                f"x-amz-content-sha256 {declared[:40]!r} is not accepted: the body must be signed "
                "(its sha256)."
            )
        if declared is not None and declared.strip().lower() != payload_hash:
            raise InvalidSignature(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )
        canonical = canonical_headers(headers, signed)
        if canonical is None:
            raise InvalidSignature(_MISMATCH)
        canonical_request = "\n".join(
            (
                request.method.upper(),
                canonical_uri(request.raw_path),
                canonical_query(request.raw_query),
                canonical,
                auth.signed_headers,
                payload_hash,
            )
        )
        key = signing_key(secret, auth.date, auth.region, auth.service)
        expected = hmac.new(
            key, string_to_sign(amz_date, auth.scope, canonical_request).encode(), hashlib.sha256
        )
        if not hmac.compare_digest(expected.hexdigest().encode(), auth.signature.encode()):
            raise InvalidSignature(_MISMATCH)
        return SigV4Identity(auth.access_key_id, auth.region, signed_at)

    def _check_scope(self, auth: SigV4Authorization, amz_date: str) -> None:
        if auth.terminator != TERMINATOR:
            raise InvalidSignature(
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                f"not '{auth.terminator}'."
            )
        if auth.service != self._service:
            raise InvalidSignature(f"Credential should be scoped to correct service: '{self._service}'.")
        if auth.date != amz_date[:8]:
            raise InvalidSignature(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
            )

    def _check_time(self, amz_date: str, signed_at: int) -> None:
        now = int(self._clock())
        if signed_at < now - self._max_skew:
            raise InvalidSignature(
                f"Signature expired: {amz_date} is now earlier than {_amz(now - self._max_skew)} "
                f"({_amz(now)} - {self._max_skew // 60} min.)"
            )
        if signed_at > now + self._max_skew:
            raise InvalidSignature(
                f"Signature not yet current: {amz_date} is still later than {_amz(now + self._max_skew)} "
                f"({_amz(now)} + {self._max_skew // 60} min.)"
            )


def _first(by_name: Mapping[str, list[str]], name: str) -> str | None:
    values = by_name.get(name)
    return values[0] if values else None


def _parse_amz_date(value: str) -> int:
    # By hand: strptime costs more than the rest of the date handling together.
    if _AMZ_DATE_RE.match(value):
        try:
            moment = datetime(
                int(value[0:4]),
                int(value[4:6]),
                int(value[6:8]),
                int(value[9:11]),
                int(value[11:13]),
                int(value[13:15]),
                tzinfo=UTC,
            )
        except ValueError:
            pass
        else:
            return int(moment.timestamp())
    raise IncompleteSignature(f"Date must be in ISO-8601 'basic format'. Got '{value[:32]}'.")


def _amz(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(_AMZ_DATE_FORMAT)
