"""The FlexChargeError tree.

One base class for everything the app raises. ``str(exc)`` is safe to log:
API errors carry the HTTP status, FlexCharge's code, field errors and trace id,
never a request body (which may hold card data).

The error policy lives on the classes, as two attributes every caller reads
(the delivery tasks, order actions, refunds, the admin) instead of keeping
its own tuple of classes:

- ``retryable``: sending the same call again later (same idempotency key)
  may succeed: FlexCharge was busy or unreachable, or a person can fix what
  stopped it (credentials, settings) while the row waits.
- ``outcome_unknown``: the call may have been applied although it raised (no
  answer, a 5xx after FlexCharge read it, a 409 replay answer): nothing may be
  recorded as done *or* as not done; the app reconciles with FlexCharge.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class FlexChargeError(Exception):
    """Base class of every error raised by django-flexcharge."""

    #: Whether the same call may succeed if sent again later (same idempotency key).
    retryable: bool = False
    #: Whether FlexCharge may have applied the call although it raised.
    outcome_unknown: bool = False


class FlexChargeConfigurationError(FlexChargeError, ImproperlyConfigured):
    """A setting is missing or invalid.

    Retryable: a queued order waits while the setting is fixed; nothing was sent.
    """

    retryable = True

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
    """Credentials refused (400 from /oauth2/token) or a 401 that survived a new token.

    Retryable: the credentials can be fixed while a queued order waits, and a
    refused token means FlexCharge never read the call.
    """

    retryable = True


class FlexChargeNotFound(FlexChargeAPIError):
    """404: FlexCharge does not know that order."""


class FlexChargeConflict(FlexChargeAPIError):
    """409: an idempotency key was reused with a different payload.

    Outcome unknown: it may be FlexCharge's answer to a replay of a call it
    applied (its replay behaviour is undocumented), so it proves nothing.
    """

    outcome_unknown = True


class FlexChargeRateLimited(FlexChargeAPIError):
    """429: too many requests; ``retry_after`` holds FlexCharge's hint in seconds."""

    retryable = True


class FlexChargeServerError(FlexChargeAPIError):
    """5xx: FlexCharge failed; the same request may be sent again.

    Outcome unknown: FlexCharge may have applied it before failing.
    """

    retryable = True
    outcome_unknown = True


class FlexChargeTimeout(FlexChargeAPIError):
    """No answer within ``FLEXCHARGE_TIMEOUT``. The call may or may not have been applied."""

    retryable = True
    outcome_unknown = True


class FlexChargeConnectionError(FlexChargeAPIError):
    """FlexCharge could not be reached (DNS, refused, reset).

    Outcome unknown: a reset may come after the request was read.
    """

    retryable = True
    outcome_unknown = True


class FlexChargeRefundUnconfirmed(FlexChargeAPIError):
    """A refund was sent but FlexCharge's answer was lost or unreadable: the money may have moved.

    Not retryable: a refund carries no idempotency key, so sending it again
    could pay out twice. The ``Refund`` row is ``unconfirmed`` and
    ``flexcharge_sync`` settles it from FlexCharge's refunded total.
    """

    outcome_unknown = True


class FlexChargeWebhookError(FlexChargeError):
    """A webhook delivery was refused; ``status_code`` is the HTTP answer to give."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def may_retry(err: BaseException) -> bool:
    """``retryable`` for any exception: one of ours says; anything else (a bug, a library
    error) is retried, so an unexpected failure never loses a queued row."""
    return not isinstance(err, FlexChargeError) or err.retryable


def outcome_unknown(err: BaseException) -> bool:
    """``outcome_unknown`` for any exception: anything not ours may have struck after the
    request left, so nobody knows whether it was applied."""
    return not isinstance(err, FlexChargeError) or err.outcome_unknown


def retry_after(err: BaseException) -> float | None:
    """The delay FlexCharge asked for (``Retry-After``), if ``err`` is its answer."""
    return err.retry_after if isinstance(err, FlexChargeAPIError) else None


def describe(err: BaseException) -> str:
    """``err`` as a row stores it: one of ours is built to be safe to store; anything
    else is reduced to its class, so no unexpected text (a request body) lands in a row."""
    return str(err)[:2000] if isinstance(err, FlexChargeError) else type(err).__name__
