"""Forms of the admin's intermediate pages.

``RefundForm`` is one row of the Refund action: one per selected order, each
with its own prefix (``refund-<pk>-amount`` ...), so orders in different
currencies sit on one page and each is checked against its own refundable
rest (``order_actions.refundable_rest``: the unrefunded amount less refunds
still awaiting FlexCharge's answer, the same figure ``refund_order`` checks).
Amounts are typed in major units and turned into integer minor units with
``money.to_minor``, which refuses more decimals than the currency has.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import FlexChargeOrder
from .money import exponent, format_amount, to_minor
from .order_actions import refundable_rest

FULL = "full"
PARTIAL = "partial"


class RefundForm(forms.Form):
    """Full or partial refund of one order; ``cleaned_data["amount_minor"]`` is None for full."""

    kind = forms.ChoiceField(
        label=_("Refund"),
        choices=[(FULL, _("Full: the refundable rest")), (PARTIAL, _("Partial"))],
        initial=FULL,
        widget=forms.RadioSelect,
    )
    # Text, not a number input: the server is the one judge of precision, and
    # its message ("JPY has no decimal places") beats a browser's step hint.
    amount = forms.DecimalField(
        label=_("Amount"),
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 12}),
    )
    reason = forms.CharField(label=_("Reason"), max_length=255, required=False)

    def __init__(
        self, *args: Any, order: FlexChargeOrder, rest: int | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("prefix", f"refund-{order.pk}")
        super().__init__(*args, **kwargs)
        self.order = order
        #: Minor units that may still be refunded (pass it when already known).
        self.rest = refundable_rest(order) if rest is None else rest
        self.fields["amount"].help_text = _("In %(currency)s, at most %(rest)s.") % {
            "currency": order.currency,
            "rest": self.refundable_display,
        }
        self.fields["amount"].widget.attrs["data-currency"] = order.currency

    @property
    def refundable_display(self) -> str:
        return format_amount(self.rest, self.order.currency)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.rest <= 0:
            raise forms.ValidationError(
                _("%(order)s has nothing left to refund (status %(status)s)."),
                code="not_refundable",
                params={"order": self.order.order_id, "status": self.order.get_status_display()},
            )
        if cleaned.get("kind") != PARTIAL:
            cleaned["amount_minor"] = None
            return cleaned
        amount: Decimal | None = cleaned.get("amount")
        if amount is None:
            if "amount" not in self.errors:
                self.add_error("amount", _("Enter the amount to refund."))
            return cleaned
        cleaned["amount_minor"] = self._to_minor(amount)
        return cleaned

    def _to_minor(self, amount: Decimal) -> int | None:
        currency = self.order.currency
        if amount <= 0:
            self.add_error("amount", _("Enter an amount greater than zero."))
            return None
        try:
            minor = to_minor(amount, currency)
        except ValueError:
            places = exponent(currency)
            if places == 0:
                message = _("%(currency)s has no minor units: enter a whole amount.")
            else:
                message = _("%(currency)s allows at most %(places)d decimal places.")
            self.add_error("amount", message % {"currency": currency, "places": places})
            return None
        if minor > self.rest:
            self.add_error(
                "amount",
                _("%(amount)s is more than the refundable rest, %(rest)s.")
                % {"amount": format_amount(minor, currency), "rest": self.refundable_display},
            )
            return None
        return minor
