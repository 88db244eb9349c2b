"""refund_answers: the verdict on a refund answer or error, and the total in a GET order answer."""

from __future__ import annotations

import pytest

from django_flexcharge.exceptions import (
    FlexChargeAPIError,
    FlexChargeAuthError,
    FlexChargeConfigurationError,
    FlexChargeConflict,
    FlexChargeNotFound,
    FlexChargeTimeout,
)
from django_flexcharge.refund_answers import (
    APPROVED,
    DECLINED,
    UNCONFIRMED,
    classify_answer,
    classify_error,
    refunded_total,
)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ({"success": True, "status": "SUCCESS"}, APPROVED),
        ({"success": True, "status": "success", "responseMessage": "Approved"}, APPROVED),
        ({"success": True, "status": "SUCCESS", "responseMessage": "DECLINED"}, DECLINED),
        ({"success": True, "status": "SUCCESS", "responseMessage": " declined "}, DECLINED),
        ({"success": False, "status": "SUCCESS"}, DECLINED),
        ({"success": True, "status": "SUCCESS", "responseCode": "51"}, UNCONFIRMED),
        ({"success": True, "responseMessage": "APPROVED"}, APPROVED),
        ({"success": True}, UNCONFIRMED),
        ({"status": "SUCCESS"}, UNCONFIRMED),
    ],
    ids=repr,
)
def test_answers(answer, kind):
    assert classify_answer(answer).kind == kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (FlexChargeTimeout("timed out"), UNCONFIRMED),
        (FlexChargeConflict("conflict", status=409), UNCONFIRMED),
        (FlexChargeNotFound("no such order", status=404), DECLINED),
        (FlexChargeAuthError("bad key", status=401), DECLINED),
        (FlexChargeAPIError("not JSON", status=200), UNCONFIRMED),
        (FlexChargeAPIError("no", status=200, response={"success": False}), DECLINED),
        (FlexChargeConfigurationError("FLEXCHARGE_APP_KEY is not set."), DECLINED),
        (RuntimeError("a bug after the request may have left"), UNCONFIRMED),
    ],
    ids=repr,
)
def test_errors(error, kind):
    assert classify_error(error).kind == kind


def test_an_unexpected_error_is_recorded_by_its_class_name_only():
    verdict = classify_error(ValueError("4000002760003184"))
    assert verdict.message == "ValueError"


@pytest.mark.parametrize(
    ("answer", "units", "total"),
    [
        ({"refundedAmount": 500}, "minor", 500),
        ({"refundedAmount": "500"}, "minor", 500),
        ({"refundedAmount": 5.5}, "minor", None),  # not whole minor units
        ({"refundedAmount": "5.50"}, "major", 550),
        ({"refundedAmount": "5.001"}, "major", None),  # more decimals than USD has
        ({"refundedAmount": "NaN"}, "minor", None),
        ({"refundedAmount": None, "totalRefundedAmount": 300}, "minor", 300),
        ({"refundedAmount": [5]}, "minor", None),
        ({}, "minor", None),
    ],
    ids=repr,
)
def test_refunded_total(settings, answer, units, total):
    settings.FLEXCHARGE_ORDER_AMOUNT_UNITS = units
    assert refunded_total(answer, 1999, "USD") == total
