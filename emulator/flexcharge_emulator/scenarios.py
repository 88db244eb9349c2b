"""Outcome rules: which evaluated order is rescued, expires or is declined.

FlexCharge publishes no sandbox trigger list (flexcharge-api.md §15, §19.9), so
these rules are the emulator's own, chosen to be deterministic from data a
test controls. The two cards come from integrators' sandbox evidence
(§15): ``4000002760003184`` was rescued/approved, ``4000300011112220`` is the
"declined card". Everything else is steered by the amount's minor units:

=====================================  =========================  =====================
input                                  managed MIT (with expiry)  sync MIT / CIT
=====================================  =========================  =====================
card ``4000002760003184``              SUBMITTED, then rescued    APPROVED
card ``4000300011112220``              SUBMITTED, then expired    DECLINED
amount % 100 == 13 (e.g. 10.13)        SUBMITTED, then expired    DECLINED
amount % 100 == 66 (e.g. 10.66)        DECLINED (not eligible)    DECLINED
any other amount                       SUBMITTED, then rescued    APPROVED
=====================================  =========================  =====================

A card rule wins over an amount rule. The card is the PAN behind a vaulted
token (``paymentMethod.cardNumber`` with ``token: true``) or a raw PAN.
"""

from __future__ import annotations

RESCUE_CARD = "4000002760003184"
NOT_RESCUED_CARD = "4000300011112220"
EXPIRE_CENTS = 13
DECLINE_CENTS = 66

#: Eventual fate of an order.
RESCUED = "rescued"
EXPIRED = "expired"
NOT_ELIGIBLE = "not_eligible"


def card_rule(pan: str) -> str | None:
    """The scenario a PAN forces, or None. Stored per vault token instead of the PAN."""
    digits = "".join(ch for ch in pan if ch.isdigit())
    if digits == RESCUE_CARD:
        return RESCUED
    if digits == NOT_RESCUED_CARD:
        return EXPIRED
    return None


def fate(card_scenario: str | None, amount: int) -> str:
    """What FlexCharge will eventually do with this decline."""
    if card_scenario is not None:
        return card_scenario
    cents = amount % 100
    if cents == DECLINE_CENTS:
        return NOT_ELIGIBLE
    if cents == EXPIRE_CENTS:
        return EXPIRED
    return RESCUED


def evaluate_status(fate_: str, managed: bool) -> str:
    """The ``status`` ``/evaluate`` answers with.

    Managed MIT answers ``SUBMITTED`` and resolves later, unless the decline is
    not eligible at all; everything else (sync MIT, CIT) is decided now.
    """
    if fate_ == NOT_ELIGIBLE:
        return "DECLINED"
    if managed:
        return "SUBMITTED"
    return "APPROVED" if fate_ == RESCUED else "DECLINED"
