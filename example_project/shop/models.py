"""The subscription site's own data: plans, billing details, subscriptions and charges.

The customer is the auth user. Nothing here holds a card number or a CVV:
the card lives at FlexCharge's vault (``django_flexcharge.VaultedCard``, a
token plus display data) and at the processor (``processor_payment_method``,
its stored-card id).
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from django_flexcharge import types
from django_flexcharge.models import VaultedCard
from django_flexcharge.money import format_amount

from .processor import NAME as PROCESSOR_NAME


def add_interval(when: dt.datetime, interval: str) -> dt.datetime:
    """``when`` plus one billing interval, clamped to the month's last day (Jan 31 -> Feb 28)."""
    months = 12 if interval == Plan.Interval.YEARLY else 1
    month_index = when.month - 1 + months
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


class Plan(models.Model):
    class Interval(models.TextChoices):
        # FlexCharge's sample subscription object uses "monthly" (flexcharge-api.md §6.3).
        MONTHLY = "monthly", "month"
        YEARLY = "yearly", "year"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=255, blank=True)
    price = models.PositiveIntegerField(help_text="minor units (cents)")
    currency = models.CharField(max_length=3, default="USD")
    interval = models.CharField(max_length=16, choices=Interval.choices, default=Interval.MONTHLY)

    class Meta:
        ordering = ["price"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_price})"

    @property
    def display_price(self) -> str:
        return f"{format_amount(self.price, self.currency)} / {self.get_interval_display()}"


class BillingDetails(models.Model):
    """The customer's billing address, kept for renewals: ``/evaluate`` needs one."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_details"
    )
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    address_line1 = models.CharField("address", max_length=200)
    address_line2 = models.CharField("address (line 2)", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=100, blank=True)
    zipcode = models.CharField("ZIP / postal code", max_length=20)
    country_code = models.CharField("country", max_length=2, default="US")
    phone = models.CharField(max_length=30, blank=True)

    class Meta:
        verbose_name_plural = "billing details"

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}, {self.city} {self.country_code}"

    def as_flexcharge(self) -> types.BillingAddress:
        return types.BillingAddress(
            first_name=self.first_name,
            last_name=self.last_name,
            address_line1=self.address_line1,
            address_line2=self.address_line2,
            city=self.city,
            state=self.state,
            zipcode=self.zipcode,
            country_code=self.country_code,
            phone=self.phone,
        )


def payer_for(user: Any) -> types.Payer:
    """The customer (an auth user) as FlexCharge's ``payer``: email, our id, phone."""
    details = BillingDetails.objects.filter(user=user).first()
    return types.Payer(
        email=user.email,
        id=str(user.pk),
        phone=details.phone if details else "",
    )


class Subscription(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        PAST_DUE = "past_due", "past due"
        # A renewal declined and FlexCharge is retrying it: the site must not
        # charge the customer again meanwhile (flexcharge-api.md §6.1).
        RESCUE_PENDING = "rescue_pending", "rescue pending"
        CANCELLED = "cancelled", "cancelled"

    #: The customer has (or is about to have) the service: renewals look at these.
    LIVE = (Status.ACTIVE, Status.RESCUE_PENDING)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    current_period_end = models.DateTimeField()
    #: The card vaulted at FlexCharge at checkout: what a declined renewal is rescued with.
    card = models.ForeignKey(
        VaultedCard, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: The processor's stored-card id, what renewals are charged with.
    processor_payment_method = models.CharField(max_length=100)
    #: Successful payments so far (1 after checkout); FlexCharge's ``paymentNumber``.
    payment_number = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["status", "current_period_end"], name="shop_sub_due")]

    def __str__(self) -> str:
        return f"{self.reference}: {self.plan.name} for {self.user} ({self.get_status_display()})"

    @property
    def reference(self) -> str:
        """Our subscription id, as FlexCharge sees it (``subscription.subscriptionId``)."""
        return f"SUB-{self.pk:06d}"

    def as_flexcharge(self, *, payment_number: int) -> types.Subscription:
        return types.Subscription(
            id=self.reference,
            interval=self.plan.interval,
            price=self.plan.price,
            currency=self.plan.currency,
            payment_number=payment_number,
        )

    def extend_period(self) -> None:
        """One more paid period: the end moves one interval on and the payment count grows."""
        self.current_period_end = add_interval(self.current_period_end, self.plan.interval)
        self.payment_number += 1

    def latest_charge(self) -> Charge | None:
        return self.charges.order_by("-created", "-pk").first()


class InvoiceNumber(models.Model):
    """Hands out order ids (``INV-000123``) before anything is charged.

    SenseJS must be told the order id while the customer is still on the
    checkout page, so the id exists before the charge does; a counter row
    keeps ids unique on SQLite and PostgreSQL alike without a raw sequence.
    """

    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.order_id

    @property
    def order_id(self) -> str:
        return f"INV-{self.pk:06d}"

    @classmethod
    def allocate(cls) -> str:
        return cls.objects.create().order_id


class Charge(models.Model):
    """One attempt to take a payment, with the processor's answer.

    ``order_id`` is the id the site gives FlexCharge: a declined renewal's
    ``FlexChargeOrder.order_id`` equals it, which is how the receivers find
    the charge when FlexCharge reports back.
    """

    class Status(models.TextChoices):
        APPROVED = "approved", "approved"
        DECLINED = "declined", "declined"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="charges"
    )
    #: Empty for a declined checkout: no subscription was started.
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.CASCADE, related_name="charges"
    )
    order_id = models.CharField(max_length=32, unique=True)
    amount = models.PositiveIntegerField(help_text="minor units (cents)")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices)
    #: The processor's answer to our own attempt; kept when FlexCharge later rescues it.
    transaction_id = models.CharField("processor transaction id", max_length=64)
    response_code = models.CharField(max_length=8)
    response_description = models.CharField(max_length=100, blank=True)
    avs_result_code = models.CharField("AVS result", max_length=4, blank=True)
    cvv_result_code = models.CharField("CVV result", max_length=4, blank=True)
    is_mit = models.BooleanField("merchant-initiated", default=False)
    #: Set when FlexCharge rescued this declined charge (``order_approved``).
    rescued_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.display_amount} {self.status}"

    @property
    def display_amount(self) -> str:
        return format_amount(self.amount, self.currency)

    def as_flexcharge(self) -> types.Payment:
        return types.Payment(
            order_id=self.order_id,
            transaction_id=self.transaction_id,
            amount=self.amount,
            currency=self.currency,
            response_code=self.response_code,
            response_description=self.response_description,
            processor=PROCESSOR_NAME,
            occurred_at=self.created,
            avs_result_code=self.avs_result_code or "NA",
            cvv_result_code=self.cvv_result_code or "NA",
            cavv_result_code="NA",  # no 3-D Secure in this example
            is_mit=self.is_mit,  # renewals are merchant-initiated
        )
