"""Errors that become HTTP responses ``{"error": "..."}`` with their status code.

    GatewayError (500, internal)
    ├── BadRequest (400, bad_request)
    │   ├── InvalidInput (400, invalid_input)       a tensor does not fit the signature
    │   ├── UnsupportedMediaType (415, unsupported_media_type)
    │   └── RemoteRejected (400/413/422 as the remote said, remote_rejected)
    │                                                   a remote model refused the input
    ├── Unauthorized (401, unauthorized)           no bearer token where one is needed
    ├── Forbidden (403, forbidden)                 a wrong token, or one without the scope
    ├── NotFound (404, not_found)                  unknown model, version or deployment
    ├── PayloadTooLarge (413, payload_too_large)
    ├── TooManyRequests (429, too_many_requests)   over a rate limit; says when to retry
    ├── NotReady (503, not_ready)
    ├── NotSupported (501, not_supported)          a protocol feature the gateway does not offer
    ├── BadGateway (502, bad_gateway)               a remote backend failed
    └── GatewayTimeout (504, gateway_timeout)       a remote backend did not answer in time
"""

from __future__ import annotations


class GatewayError(Exception):
    status_code = 500
    code = "internal"
    # Set by the service once a request has been routed: the model (name, version) it went
    # to, and whether that model ran and gave this error (else it refused the input).
    model: tuple[str, str] | None = None
    model_ran = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """Response headers this error needs (e.g. WWW-Authenticate, Retry-After)."""
        return {}


class BadRequest(GatewayError):
    status_code = 400
    code = "bad_request"


class InvalidInput(BadRequest):
    code = "invalid_input"


class UnsupportedMediaType(BadRequest):
    status_code = 415
    code = "unsupported_media_type"


class RemoteRejected(BadRequest):
    """A remote model refused the request as invalid; the caller gets the remote's status."""

    code = "remote_rejected"

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class Unauthorized(GatewayError):
    status_code = 401
    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"www-authenticate": 'Bearer realm="shadowgate"'}


class Forbidden(GatewayError):
    status_code = 403
    code = "forbidden"


class NotFound(GatewayError):
    status_code = 404
    code = "not_found"


class PayloadTooLarge(GatewayError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(GatewayError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after_s)}


class NotReady(GatewayError):
    status_code = 503
    code = "not_ready"


class NotSupported(GatewayError):
    status_code = 501
    code = "not_supported"


class BadGateway(GatewayError):
    status_code = 502
    code = "bad_gateway"


class GatewayTimeout(GatewayError):
    status_code = 504
    code = "gateway_timeout"


class ConfigError(Exception):
    """A config or model repository that cannot be served; ``errors`` are 'key.path: problem'."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors
