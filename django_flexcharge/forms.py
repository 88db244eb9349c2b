"""Forms of the admin's intermediate pages.

``RefundForm`` is one row of the Refund page: one per selected order, each
with its own prefix (``refund-<pk>-amount`` ...), so orders in different
currencies sit on one page and each is checked against its own refundable
rest (``refunds.refundable_rest``, the figure ``refund_order`` checks too).

The form never refunds more than the person saw. Nothing is preselected; the
"Full" choice prints the exact sum; a choice and an amount that disagree
("Full" with 1.00 typed) are refused on the amount field, on the server, so a
POST without JavaScript is judged the same. A valid form leads to a
confirmation page that states each exact sum; its POST carries the sum the
person confirmed (``confirmed``, minor units), and a refund is sent only when
that still equals what the form means now. Amounts are typed in major units
and turned into integer minor units with ``money.to_minor``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import FlexChargeOrder
from .money import exponent, format_amount, to_minor
from .refunds import refundable_rest

FULL = "full"
PARTIAL = "partial"


class RefundForm(forms.Form):
    """Full or partial refund of one order; ``cleaned_data["amount_minor"]`` is the exact sum."""

    kind = forms.ChoiceField(
        label=_("Refund"),
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose a full or a partial refund.")},
    )
    # Text, not a number input: the server is the one judge of precision, and
    # its message ("JPY has no decimal places") beats a browser's step hint.
    amount = forms.DecimalField(
        label=_("Amount"),
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 12}),
    )
    reason = forms.CharField(label=_("Reason"), max_length=255, required=False)
    #: The sum (minor units) shown on the confirmation page and confirmed there.
    confirmed = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        order: FlexChargeOrder,
        rest: int | None = None,
        confirming: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("prefix", f"refund-{order.pk}")
        super().__init__(*args, **kwargs)
        self.order = order
        #: Minor units that may be refunded now (pass it when already known).
        self.rest = refundable_rest(order) if rest is None else rest
        #: True on the confirmation page's POST: ``confirmed`` must match.
        self.confirming = confirming
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = [
            (FULL, _("Full: %(rest)s") % {"rest": self.refundable_display}),
            (PARTIAL, _("Partial: the amount below")),
        ]
        self.fields["amount"].help_text = _("In %(currency)s, at most %(rest)s.") % {
            "currency": order.currency,
            "rest": self.refundable_display,
        }
        self.fields["amount"].widget.attrs["data-currency"] = order.currency

    @property
    def refundable_display(self) -> str:
        return format_amount(self.rest, self.order.currency)

    @property
    def amount_display(self) -> str:
        """The exact sum this form refunds (after ``is_valid()``)."""
        return format_amount(self.cleaned_data["amount_minor"], self.order.currency)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.rest <= 0:
            raise forms.ValidationError(
                _("%(order)s has nothing left to refund (status %(status)s)."),
                code="not_refundable",
                params={"order": self.order.order_id, "status": self.order.get_status_display()},
            )
        kind = cleaned.get("kind")
        if kind is None or "amount" in self.errors:
            return cleaned
        amount: Decimal | None = cleaned.get("amount")
        typed = None if amount is None else self._to_minor(amount)
        if amount is not None and typed is None:
            return cleaned  # _to_minor named the problem
        if kind == FULL:
            if typed is not None and typed != self.rest:
                self.add_error(
                    "amount",
                    _(
                        "You chose a full refund (%(rest)s) but typed %(typed)s. Choose "
                        "“Partial” to refund %(typed)s, or clear the amount."
                    )
                    % {
                        "rest": self.refundable_display,
                        "typed": format_amount(typed, self.order.currency),
                    },
                )
                return cleaned
            cleaned["amount_minor"] = self.rest
        elif typed is None:
            self.add_error("amount", _("Enter the amount to refund."))
            return cleaned
        else:
            cleaned["amount_minor"] = typed
        self._check_confirmed(cleaned)
        return cleaned

    def _check_confirmed(self, cleaned: dict[str, Any]) -> None:
        if not self.confirming:
            return
        shown = cleaned.get("confirmed")
        if shown != cleaned["amount_minor"]:
            del cleaned["amount_minor"]
            raise forms.ValidationError(
                _(
                    "The amount to refund changed since it was confirmed; check it and confirm again."
                ),
                code="not_confirmed",
            )

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
