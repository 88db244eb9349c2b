"""The error policy on the exception classes: retryable, and outcome unknown."""

from __future__ import annotations

import pytest

from django_flexcharge.exceptions import (
    FlexChargeAPIError,
    FlexChargeAuthError,
    FlexChargeConfigurationError,
    FlexChargeConflict,
    FlexChargeConnectionError,
    FlexChargeError,
    FlexChargeNotFound,
    FlexChargeRateLimited,
    FlexChargeRefundUnconfirmed,
    FlexChargeServerError,
    FlexChargeStateError,
    FlexChargeTimeout,
    FlexChargeValidationError,
    FlexChargeWebhookError,
    may_retry,
    outcome_unknown,
)

POLICY = [
    # class, retryable, outcome unknown
    (FlexChargeAPIError, False, False),
    (FlexChargeNotFound, False, False),
    (FlexChargeConflict, False, True),
    (FlexChargeRateLimited, True, False),
    (FlexChargeServerError, True, True),
    (FlexChargeTimeout, True, True),
    (FlexChargeConnectionError, True, True),
    (FlexChargeAuthError, True, False),
    (FlexChargeRefundUnconfirmed, False, True),
]


@pytest.mark.parametrize(("kind", "retryable", "unknown"), POLICY)
def test_each_api_error_states_its_policy(kind, retryable, unknown):
    err = kind("x", status=500)
    assert (err.retryable, err.outcome_unknown) == (retryable, unknown)
    assert (may_retry(err), outcome_unknown(err)) == (retryable, unknown)


def test_errors_found_before_sending_are_known_outcomes():
    for err in (
        FlexChargeValidationError("amount", "bad"),
        FlexChargeStateError("no"),
        FlexChargeWebhookError("no", 401),
    ):
        assert (may_retry(err), outcome_unknown(err)) == (False, False)
    # A setting can be fixed while a queued row waits; nothing was sent.
    config = FlexChargeConfigurationError("unset", setting="FLEXCHARGE_X")
    assert (may_retry(config), outcome_unknown(config)) == (True, False)


def test_an_unexpected_exception_is_retried_and_its_outcome_unknown():
    # A bug or a library error after the request left: lose nothing, assume nothing.
    assert may_retry(RuntimeError("boom")) is True
    assert outcome_unknown(RuntimeError("boom")) is True


def test_the_base_class_is_neither():
    assert (FlexChargeError.retryable, FlexChargeError.outcome_unknown) == (False, False)
