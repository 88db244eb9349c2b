"""Sign-up and checkout forms.

The checkout form turns its input into django-flexcharge's validated types
(``types.Card``, ``types.BillingAddress``) in ``clean()``, and shows each
``FlexChargeValidationError`` on the field it names.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone

from django_flexcharge import types
from django_flexcharge.exceptions import FlexChargeValidationError

from .models import BillingDetails


class SignupForm(UserCreationForm):
    # FlexCharge needs the payer's email with every declined renewal.
    email = forms.EmailField(required=True)

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class NoEchoInput(forms.TextInput):
    """A text input that never writes the submitted value back into the page.

    Re-rendering a form after an error normally echoes every value; for the
    card number and CVV that would put card data into the HTML (and into any
    cache or proxy log that keeps it).
    """

    def format_value(self, value: Any) -> None:
        return None


def _year_choices() -> list[tuple[int, str]]:
    year = timezone.now().year
    return [(y, str(y)) for y in range(year, year + 16)]


#: ``FlexChargeValidationError.field`` -> the form field that shows the error.
FIELD_FOR_ERROR = {
    "card.number": "card_number",
    "card.cvv": "cvv",
    "card.exp_month": "exp_month",
    "card.exp_year": "exp_year",
    "card.first_name": "first_name",
    "card.last_name": "last_name",
    "billing.first_name": "first_name",
    "billing.last_name": "last_name",
    "billing.address_line1": "address_line1",
    "billing.address_line2": "address_line2",
    "billing.city": "city",
    "billing.state": "state",
    "billing.zipcode": "zipcode",
    "billing.country_code": "country_code",
    "billing.phone": "phone",
    "payer.phone": "phone",
}

BILLING_FIELDS = (
    "first_name",
    "last_name",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zipcode",
    "country_code",
    "phone",
)


class CheckoutForm(forms.Form):
    first_name = forms.CharField(label="First name (as on the card)", max_length=100)
    last_name = forms.CharField(label="Last name", max_length=100)
    card_number = forms.CharField(
        label="Card number",
        max_length=23,  # 19 digits plus the spaces people type
        widget=NoEchoInput(
            attrs={"autocomplete": "cc-number", "inputmode": "numeric", "spellcheck": "false"}
        ),
    )
    exp_month = forms.TypedChoiceField(
        label="Expiry month",
        coerce=int,
        choices=[(m, f"{m:02d}") for m in range(1, 13)],
        widget=forms.Select(attrs={"autocomplete": "cc-exp-month"}),
    )
    exp_year = forms.TypedChoiceField(
        label="Expiry year",
        coerce=int,
        choices=_year_choices,
        widget=forms.Select(attrs={"autocomplete": "cc-exp-year"}),
    )
    cvv = forms.CharField(
        label="CVV",
        max_length=4,
        widget=NoEchoInput(attrs={"autocomplete": "cc-csc", "inputmode": "numeric", "size": 4}),
    )
    address_line1 = forms.CharField(label="Address", max_length=200)
    address_line2 = forms.CharField(label="Address (line 2)", max_length=200, required=False)
    city = forms.CharField(max_length=100)
    state = forms.CharField(label="State / region", max_length=100, required=False)
    zipcode = forms.CharField(label="ZIP / postal code", max_length=20)
    country_code = forms.CharField(label="Country (2 letters)", max_length=2, initial="US")
    phone = forms.CharField(max_length=30, required=False)

    def add_flexcharge_error(self, err: FlexChargeValidationError) -> None:
        """Show ``err`` on the field it names, or above the form for anything else."""
        name = FIELD_FOR_ERROR.get(err.field)
        if name is None:
            self.add_error(None, str(err))
        else:
            # "card.zipcode: must be 5 or 9 digits" -> "ZIP / postal code must be 5 or 9 digits"
            self.add_error(name, f"{self[name].label} {err.message}")

    def billing_fields(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name in BILLING_FIELDS}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned  # the missing or malformed fields first
        # Taken before add_error(), which drops the field from cleaned_data.
        billing = self.billing_fields()
        try:
            cleaned["card"] = types.Card(
                number=cleaned["card_number"],
                cvv=cleaned["cvv"],
                exp_month=cleaned["exp_month"],
                exp_year=cleaned["exp_year"],
                first_name=cleaned["first_name"],
                last_name=cleaned["last_name"],
            )
        except FlexChargeValidationError as err:
            self.add_flexcharge_error(err)
        try:
            # Validated now so an address FlexCharge would refuse at renewal
            # time is fixed while the customer is still here.
            BillingDetails(**billing).as_flexcharge()
        except FlexChargeValidationError as err:
            self.add_flexcharge_error(err)
        return cleaned
