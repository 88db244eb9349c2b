"""The FlexChargeError tree.

One base class for everything the app raises. ``str(exc)`` is safe to log:
API errors carry the HTTP status, FlexCharge's code, field errors and trace id,
never a request body (which may hold card data).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class FlexChargeError(Exception):
    """Base class of every error raised by django-flexcharge."""

    #: Whether the same call may succeed if sent again later (same idempotency key).
    retryable = False


class FlexChargeConfigurationError(FlexChargeError, ImproperlyConfigured):
    """A setting is missing or invalid."""

    def __init__(self, message: str, *, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


class FlexChargeValidationError(FlexChargeError, ValueError):
    """Bad input, found before anything was stored or sent. ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FlexChargeStateError(FlexChargeError):
    """The order is not in a state that allows the operation (e.g. refund a pending order)."""


class FlexChargeAPIError(FlexChargeError):
    """FlexCharge answered with an error.

    ``status``: HTTP status; ``code``: FlexCharge's response code (e.g. ``"2001"``);
    ``errors``: field path -> messages (flattened 400) or a list of messages
    (envelope errors); ``trace_id``: FlexCharge's W3C trace id, for support.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        errors: dict[str, list[str]] | None = None,
        trace_id: str = "",
        response: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.errors = errors or {}
        self.trace_id = trace_id
        #: The decoded response body (FlexCharge's answer, never our request).
        self.response = response or {}
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.errors:
            fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items())
            parts.append(f"errors: {fields}")
        if self.trace_id:
            parts.append(f"trace {self.trace_id}")
        return " | ".join(parts)


class FlexChargeAuthError(FlexChargeAPIError):
    """Credentials refused (400 from /oauth2/token) or a 401 that survived a new token."""


class FlexChargeNotFound(FlexChargeAPIError):
    """404: FlexCharge does not know that order."""


class FlexChargeConflict(FlexChargeAPIError):
    """409: an idempotency key was reused with a different payload."""


class FlexChargeRateLimited(FlexChargeAPIError):
    """429: too many requests; ``retry_after`` holds FlexCharge's hint in seconds."""

    retryable = True


class FlexChargeServerError(FlexChargeAPIError):
    """5xx: FlexCharge failed; the same request may be sent again."""

    retryable = True


class FlexChargeTimeout(FlexChargeAPIError):
    """No answer within ``FLEXCHARGE_TIMEOUT``. The call may or may not have been applied."""

    retryable = True


class FlexChargeConnectionError(FlexChargeAPIError):
    """FlexCharge could not be reached (DNS, refused, reset)."""

    retryable = True


class FlexChargeRefundUnconfirmed(FlexChargeAPIError):
    """A refund was sent but FlexCharge's answer was lost or unreadable: the money may have moved.

    Not retryable: a refund carries no idempotency key, so sending it again
    could pay out twice. The ``Refund`` row is ``unconfirmed`` and
    ``flexcharge_sync`` settles it from FlexCharge's refunded total.
    """


class FlexChargeWebhookError(FlexChargeError):
    """A webhook delivery was refused; ``status_code`` is the HTTP answer to give."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code
