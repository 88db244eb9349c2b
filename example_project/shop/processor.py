"""A fake card processor: the stand-in for Stripe, Adyen, Braintree... in the example site.

FlexCharge is not a processor. The site charges cards through its own
processor and calls FlexCharge around it: a copy of every approval
(``/transmit``) and each declined renewal (``/evaluate``). This module plays
the processor, with answers that depend only on the card number, so the demo
and the tests are deterministic:

    card number           checkout (CIT)              renewal (MIT, stored card)         then FlexCharge (emulator)
    --------------------  --------------------------  ---------------------------------  --------------------------
    4111111111111111      approved                    approved                           nothing to rescue
    5555555555554444      approved                    approved                           nothing to rescue
    4000002760003184      approved                    declined 51 "Insufficient funds"   rescued after a delay
    4000300011112220      approved                    declined 51 "Insufficient funds"   not rescued: expires
    4000000000000002      declined 05 "Do not honor"  (never stored)                     not sent (a CIT decline)
    any other valid card  approved                    approved                           nothing to rescue

The rule is the card, never the amount or the date. The emulator's own rule
(``flexcharge_emulator.scenarios``) then decides what FlexCharge does
with a decline: the two 40000... cards are its "rescued" and "expires" cards.

A real processor keeps the card and hands back an opaque stored-card id for
later charges. This one has no storage that outlives a process (the checkout
runs in the site, renewals in a management command), so its stored-card id
spells out the first six and last four digits, the truncation PCI DSS allows
anyone to keep, and nothing more. The PAN itself is never kept.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

NAME = "fakepay"

APPROVED = ("00", "Approved")
DO_NOT_HONOR = ("05", "Do not honor")
INSUFFICIENT_FUNDS = ("51", "Insufficient funds")


@dataclass(frozen=True)
class TestCard:
    number: str
    label: str
    checkout: tuple[str, str]
    renewal: tuple[str, str]


#: The table above, as data: the tests and ``seed_demo`` read it too.
TEST_CARDS = {
    card.number: card
    for card in (
        TestCard("4111111111111111", "Visa, always approved", APPROVED, APPROVED),
        TestCard("5555555555554444", "Mastercard, always approved", APPROVED, APPROVED),
        TestCard(
            "4000002760003184",
            "Visa, renewals decline; FlexCharge rescues them",
            APPROVED,
            INSUFFICIENT_FUNDS,
        ),
        TestCard(
            "4000300011112220",
            "Visa, renewals decline; FlexCharge cannot rescue them",
            APPROVED,
            INSUFFICIENT_FUNDS,
        ),
        TestCard("4000000000000002", "Visa, declined at checkout", DO_NOT_HONOR, DO_NOT_HONOR),
    )
}


@dataclass(frozen=True)
class ProcessorResult:
    """What a processor answers for one charge attempt, approved or declined."""

    approved: bool
    transaction_id: str
    response_code: str
    response_description: str
    avs_result_code: str
    cvv_result_code: str
    #: Stored-card id to charge later without the customer (empty on a decline).
    payment_method: str = ""


def _transaction_id() -> str:
    return "fp_" + secrets.token_hex(8)


def _result(answer: tuple[str, str], *, payment_method: str, mit: bool) -> ProcessorResult:
    code, description = answer
    approved = code == APPROVED[0]
    return ProcessorResult(
        approved=approved,
        transaction_id=_transaction_id(),
        response_code=code,
        response_description=description,
        avs_result_code="Y",
        # No CVV travels with a merchant-initiated charge; "NA" is what
        # processors report then (and what FlexCharge accepts).
        cvv_result_code="NA" if mit else "M",
        payment_method=payment_method if approved else "",
    )


def _test_card(first6: str, last4: str) -> TestCard | None:
    for card in TEST_CARDS.values():
        if card.number[:6] == first6 and card.number[-4:] == last4:
            return card
    return None


class FakeProcessor:
    """Authorizes a new card at checkout and charges stored cards at renewal."""

    name = NAME

    def authorize(
        self, *, order_id: str, amount: int, currency: str, number: str, cvv: str
    ) -> ProcessorResult:
        """Charge a card the customer just typed (customer-initiated).

        A real processor takes ``order_id`` as its idempotency key, so a
        double-clicked Pay button is charged once; the fake only echoes it.
        """
        digits = "".join(ch for ch in number if ch.isdigit())
        card = TEST_CARDS.get(digits)
        answer = card.checkout if card else APPROVED
        payment_method = f"pm_{digits[:6]}_{digits[-4:]}_{secrets.token_hex(4)}"
        return _result(answer, payment_method=payment_method, mit=False)

    def charge_stored(
        self, *, order_id: str, amount: int, currency: str, payment_method: str
    ) -> ProcessorResult:
        """Charge a stored card without the customer (merchant-initiated renewal)."""
        try:
            _, first6, last4, _ = payment_method.split("_")
        except ValueError as err:
            raise ValueError("not a fakepay stored-card id") from err
        card = _test_card(first6, last4)
        answer = card.renewal if card else APPROVED
        return _result(answer, payment_method=payment_method, mit=True)


processor = FakeProcessor()
