"""Client-visible outcomes, one class each.

    GatewayError                    status  code
    ├── InvalidRequest              400     invalid_request
    ├── Unauthenticated             401     unauthenticated
    ├── PolicyDenied                403     policy_denied
    ├── NotFound                    404     not_found
    ├── RequestTimeout              408     request_timeout     (the body did not arrive in time)
    ├── RequestTooLarge             413     request_too_large
    ├── RateLimited                 429     rate_limited        (Retry-After)
    │   └── BudgetExceeded          429     budget_exceeded     (Retry-After: until the dollar window resets)
    ├── UpstreamError               502     upstream_error
    │   └── UpstreamAnswerTooLarge  502     upstream_answer_too_large
    ├── NoRouteAvailable            503     no_route_available  (Retry-After)
    ├── PolicyUnavailable           503     policy_unavailable  (Retry-After)
    ├── ServerBusy                  503     server_busy         (Retry-After; too many unverified bodies)
    ├── ServiceUnavailable          503     service_unavailable (Retry-After; an admin store is unreachable)
    ├── UpstreamTimeout             504     upstream_timeout
    └── InternalError               500     internal_error      (a defect of ours, never a client's or provider's)

Messages are written by the gateway, never copied from a request, a provider
answer or a foreign exception: they are safe to log and to return.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    error_type: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        decision_id: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.decision_id = decision_id
        self.param = param

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": self.error_type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        if self.decision_id:
            error["decision_id"] = self.decision_id
        return {"error": error}


class InvalidRequest(GatewayError):
    status_code = 400
    code = "invalid_request"
    error_type = "invalid_request_error"


class Unauthenticated(GatewayError):
    status_code = 401
    code = "unauthenticated"
    error_type = "authentication_error"


class PolicyDenied(GatewayError):
    status_code = 403
    code = "policy_denied"
    error_type = "permission_error"


class NotFound(GatewayError):
    status_code = 404
    code = "not_found"
    error_type = "invalid_request_error"


class RequestTimeout(GatewayError):
    status_code = 408
    code = "request_timeout"
    error_type = "invalid_request_error"


class ServerBusy(GatewayError):
    status_code = 503
    code = "server_busy"
    error_type = "api_error"


class RequestTooLarge(GatewayError):
    status_code = 413
    code = "request_too_large"
    error_type = "invalid_request_error"


class RateLimited(GatewayError):
    status_code = 429
    code = "rate_limited"
    error_type = "rate_limit_error"


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class UpstreamError(GatewayError):
    status_code = 502
    code = "upstream_error"
    error_type = "api_error"


class UpstreamAnswerTooLarge(UpstreamError):
    code = "upstream_answer_too_large"


class NoRouteAvailable(GatewayError):
    status_code = 503
    code = "no_route_available"
    error_type = "api_error"


class PolicyUnavailable(GatewayError):
    status_code = 503
    code = "policy_unavailable"
    error_type = "api_error"


class UpstreamTimeout(GatewayError):
    status_code = 504
    code = "upstream_timeout"
    error_type = "api_error"


class ConfigError(Exception):
    """Bad configuration, found at start: one line naming the key and the fix."""


class BundleError(Exception):
    """A bundle that cannot be built, read, verified or activated: one line naming the problem.

    `detail`, when set, is OPA's own report of the same problem (its header, `file:row: code: message`
    lines and source excerpts), for tools that print what `opa` would."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class ServiceUnavailable(GatewayError):
    status_code = 503
    code = "service_unavailable"
    error_type = "api_error"


class InternalError(GatewayError):
    status_code = 500
    code = "internal_error"
    error_type = "api_error"
