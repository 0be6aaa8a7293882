"""One exception hierarchy for everything a caller can get wrong or we can fail at.

Each error knows its HTTP status and its AWS-style error type, so the gateway turns any of
them into one response shape (`{"Type": ..., "message": ...}` with `x-amzn-ErrorType`) and the
CLI into one line and a non-zero exit code.
"""

from __future__ import annotations


class FnplatError(Exception):
    status: int = 500
    error_type: str = "ServiceException"
    kind: str = "Service"  # AWS REST-JSON "Type": "User" for caller mistakes, "Service" for ours

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(FnplatError):
    status = 400
    error_type = "InvalidRequestContentException"
    kind = "User"


class InvalidParameter(FnplatError):
    status = 400
    error_type = "InvalidParameterValueException"
    kind = "User"


class SpecError(InvalidParameter):
    """function.yaml is malformed, has unknown keys or invalid values."""


class ArtifactError(InvalidParameter):
    """A code artifact is unsafe (path traversal, symlinks) or not a valid zip."""


class RequestTooLarge(FnplatError):
    status = 413
    error_type = "RequestTooLargeException"
    kind = "User"


class RequestTimeout(FnplatError):
    """The client stopped sending its request (a body stalled past FNPLAT_HTTP_BODY_TIMEOUT)."""

    status = 408
    error_type = "RequestTimeoutException"
    kind = "User"


class UnsupportedMediaType(FnplatError):
    status = 415
    error_type = "UnsupportedMediaTypeException"
    kind = "User"


class Unauthorized(FnplatError):
    status = 401
    error_type = "UnauthorizedException"
    kind = "User"


class Forbidden(FnplatError):
    status = 403
    error_type = "AccessDeniedException"
    kind = "User"


class NotFound(FnplatError):
    status = 404
    error_type = "ResourceNotFoundException"
    kind = "User"


class Conflict(FnplatError):
    status = 409
    error_type = "ResourceConflictException"
    kind = "User"


class TooManyRequests(FnplatError):
    status = 429
    error_type = "TooManyRequestsException"
    kind = "User"

    def __init__(
        self, message: str, reason: str = "ReservedFunctionConcurrentInvocationLimitExceeded"
    ) -> None:
        super().__init__(message)
        self.reason = reason


class ServiceError(FnplatError):
    status = 500
    error_type = "ServiceException"


class SecretKeyError(ServiceError):
    """The key that encrypts function environments is missing, malformed or not the one the
    store was written with (start-up stops with this message)."""


class ServiceUnavailable(FnplatError):
    """Something the platform depends on (the metadata store, the container engine) cannot be
    reached right now, or the platform is shutting down: retry after `retry_after_s` seconds."""

    status = 503
    error_type = "ServiceException"

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InsufficientStorage(FnplatError):
    """The disk the platform writes to (its data dir, or the metadata store's) is full."""

    status = 507
    error_type = "ServiceException"


class ImageBuildError(FnplatError):
    """A `runtime: image` function's Dockerfile did not build."""

    status = 400
    error_type = "ImageBuildException"
    kind = "User"


class EngineError(FnplatError):
    """The container engine failed or is unreachable (wraps every Docker failure)."""

    status = 502
    error_type = "ResourceNotReadyException"


# --- AWS Signature Version 4 (fnplat.gateway.sigv4): the error types AWS services answer ---------


class IncompleteSignature(FnplatError):
    """The Authorization header is not a well-formed SigV4 header (a part or the date is missing)."""

    status = 400
    error_type = "IncompleteSignatureException"
    kind = "User"


class MissingAuthenticationToken(Forbidden):
    """Neither a key nor a signature was presented."""

    error_type = "MissingAuthenticationTokenException"


class UnrecognizedClient(Forbidden):
    """The access key id is unknown, revoked or has no signing secret."""

    error_type = "UnrecognizedClientException"


class InvalidSignature(Forbidden):
    """The signature does not match, or was made outside the clock-skew window, or for another scope."""

    error_type = "InvalidSignatureException"


class NodeLost(FnplatError):
    """The controller running an invocation went away (crashed, killed, unreachable) before it
    answered: the invocation may or may not have run. The message names the node."""

    status = 502
    error_type = "ServiceException"
