"""What the app stores: vaulted cards, rescue orders, transmissions, webhook events, refunds.

No model has a field for a PAN or a CVV; ``tests/reliability/test_card_data.py`` fails if
one appears. Amounts are integer minor units next to an ISO-4217 currency.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .money import format_amount

DEFAULT_ACCOUNT = "default"


def account_field(*, db_index: bool = False) -> models.CharField[str, str]:
    """The FlexCharge account alias a row belongs to (``FLEXCHARGE_ACCOUNTS``; "default")."""
    return models.CharField(
        _("FlexCharge account"), max_length=64, default=DEFAULT_ACCOUNT, db_index=db_index
    )


class VaultedCard(models.Model):
    """A card vaulted at FlexCharge by ``/tokenize``: the token and display data only."""

    #: Unique per account (the unique constraint leads with the account).
    account = account_field()
    token = models.CharField(max_length=128)
    last4 = models.CharField(max_length=4)
    bin = models.CharField(max_length=8, blank=True)
    brand = models.CharField(max_length=20, blank=True)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    holder_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="flexcharge_cards",
    )
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("vaulted card")
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "token"], name="flexcharge_card_token_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.brand or 'card'} ****{self.last4} {self.exp_month:02d}/{self.exp_year}"


class FlexChargeOrder(models.Model):
    """One declined payment handed to FlexCharge for rescue (``/evaluate``)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")  # stored, /evaluate not answered yet
        PENDING = "pending", _("pending")  # SUBMITTED: FlexCharge is retrying it
        APPROVED = "approved", _("approved")  # rescued
        DECLINED = "declined", _("declined")  # not eligible / not rescued
        EXPIRED = "expired", _("expired")  # window ended without a rescue
        CANCELLED = "cancelled", _("cancelled")
        REFUNDED = "refunded", _("refunded")
        PARTIALLY_REFUNDED = "partially_refunded", _("partially refunded")
        FAILED = "failed", _("failed")  # could not be handed over (400, or window closed)

    #: States FlexCharge holds the order in; the host must not retry it itself.
    UNDER_RESCUE = (Status.QUEUED, Status.PENDING)

    #: FlexCharge scopes ids per merchant: (account, order_id) and (account,
    #: order_session_key) are unique, not the ids alone.
    account = account_field()
    order_id = models.CharField(_("order id"), max_length=100)
    order_session_key = models.CharField(
        _("FlexCharge order id"), max_length=64, null=True, blank=True
    )
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED)
    amount = models.PositiveBigIntegerField(help_text=_("minor units (cents)"))
    currency = models.CharField(max_length=3)
    #: What FlexCharge has refunded in total, as far as the app knows: the one owner of the
    #: figure (never a sum over ``Refund`` rows or webhook events).
    refunded_amount = models.PositiveBigIntegerField(default=0)
    #: FlexCharge reported a refund without its amount: ``refunded_amount`` is a lower
    #: bound until ``flexcharge_sync`` reads the total from ``GET /orders/{id}``.
    refunded_amount_unknown = models.BooleanField(default=False)
    card = models.ForeignKey(
        VaultedCard, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    subscription_id = models.CharField(max_length=100, blank=True)
    transaction_id = models.CharField(_("processor transaction id"), max_length=100, blank=True)
    email = models.EmailField(blank=True)
    is_mit = models.BooleanField(_("merchant-initiated"), default=True)
    declined_at = models.DateTimeField(default=timezone.now)
    decline_code = models.CharField(max_length=32, blank=True)
    decline_message = models.CharField(max_length=255, blank=True)
    processor = models.CharField(max_length=64, blank=True)
    expiry_date = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    confirmation_id = models.CharField(max_length=32, blank=True)
    is_test_mode = models.BooleanField(_("test mode"), default=True)
    #: The /evaluate body (card token, never a PAN), kept so every retry sends the same bytes.
    request_payload = models.JSONField(default=dict, blank=True)
    #: FlexCharge's last answer about this order (evaluate, GET order).
    response_payload = models.JSONField(default=dict, blank=True)
    api_errors = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: A worker holds the row until then; an expired lease means its task was lost.
    locked_until = models.DateTimeField(null=True, blank=True)
    #: FlexCharge ``TimeStamp`` of the last applied webhook: older events change nothing.
    last_event_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("FlexCharge order")
        ordering = ["-created"]
        permissions = [
            ("refund_flexchargeorder", "Can refund FlexCharge orders"),
            ("cancel_flexchargeorder", "Can cancel pending FlexCharge orders"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="flexcharge_order_due"),
            models.Index(fields=["created"], name="flexcharge_order_created"),
            models.Index(fields=["email"], name="flexcharge_order_email"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("amount")),
                name="flexcharge_order_refund_lte_amount",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="flexcharge_order_amount_gt_0"),
            models.UniqueConstraint(
                fields=["account", "order_id"], name="flexcharge_order_id_per_account"
            ),
            models.UniqueConstraint(
                fields=["account", "order_session_key"], name="flexcharge_session_key_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} ({self.get_status_display()}, {self.display_amount})"

    @property
    def display_amount(self) -> str:
        return format_amount(self.amount, self.currency)

    @property
    def refundable_amount(self) -> int:
        if self.status not in (self.Status.APPROVED, self.Status.PARTIALLY_REFUNDED):
            return 0
        return self.amount - self.refunded_amount

    @property
    def is_under_rescue(self) -> bool:
        return self.status in self.UNDER_RESCUE


class Transmission(models.Model):
    """One ``/transmit`` call: a copy of an approved payment, sent in the background."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    account = account_field()
    order_id = models.CharField(max_length=100)
    transaction_id = models.CharField(max_length=100)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    #: The /transmit body: card metadata only, never a PAN or CVV.
    payload = models.JSONField()
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response = models.JSONField(default=dict, blank=True)
    transmit_id = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="flexcharge_transmit_due"),
            models.Index(fields=["order_id"], name="flexcharge_transmit_order"),
            models.Index(fields=["created"], name="flexcharge_transmit_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "order_id", "transaction_id"],
                name="flexcharge_transmit_once_per_account",
            )
        ]

    def __str__(self) -> str:
        return f"transmit {self.order_id}/{self.transaction_id} ({self.status})"


class WebhookEvent(models.Model):
    """Every verified webhook delivery, stored before it is applied."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("received")
        APPLIED = "applied", _("applied")
        DUPLICATE = "duplicate", _("duplicate")
        IGNORED = "ignored", _("ignored")
        FAILED = "failed", _("failed")

    #: The account whose webhook URL (and keys) received the delivery.
    account = account_field()
    event = models.CharField(max_length=64)
    #: ``OrderId`` of the delivery: FlexCharge's order id (``FlexChargeOrder.order_session_key``).
    order_session_key = models.CharField(_("FlexCharge order id"), max_length=64, blank=True)
    #: ``ExternalOrderId``: the host's order id (``FlexChargeOrder.order_id``).
    external_order_id = models.CharField(_("host order id"), max_length=100, blank=True)
    order = models.ForeignKey(
        FlexChargeOrder, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    timestamp = models.DateTimeField(_("FlexCharge timestamp"), null=True, blank=True)
    #: Unique per account (each account's deliveries are signed with its own keys).
    nonce = models.CharField(max_length=64)
    confirmation_id = models.CharField(max_length=32, blank=True)
    is_resent = models.BooleanField(_("resent"), default=False)
    is_test_mode = models.BooleanField(_("test mode"), null=True)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    processed_at = models.DateTimeField(null=True, blank=True)
    reapplied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reapplied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["order_session_key", "event"], name="flexcharge_event_order"),
            models.Index(fields=["external_order_id"], name="flexcharge_event_external"),
            models.Index(fields=["received_at"], name="flexcharge_event_received"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "nonce"], name="flexcharge_event_nonce_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.order_session_key or self.external_order_id} ({self.status})"


class Refund(models.Model):
    """A refund asked of FlexCharge for an approved order, with its outcome."""

    class Outcome(models.TextChoices):
        PENDING = "pending", _("pending")  # being sent: no answer recorded yet
        #: Sent, but the answer was lost or unreadable (timeout, 5xx, unknown words):
        #: ``flexcharge_sync`` settles it from FlexCharge's refunded total.
        UNCONFIRMED = "unconfirmed", _("unconfirmed")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    #: Refunds that may or may not have moved money: no other refund of the order meanwhile.
    OPEN = (Outcome.PENDING, Outcome.UNCONFIRMED)

    #: Always the order's account (``refunds`` copies it), kept for filtering.
    account = account_field(db_index=True)
    order = models.ForeignKey(FlexChargeOrder, on_delete=models.PROTECT, related_name="refunds")
    amount = models.PositiveBigIntegerField(help_text=_("minor units (cents)"))
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    response = models.JSONField(default=dict, blank=True)
    #: FlexCharge's ``responseCode`` and ``responseMessage`` (a refused refund says why here).
    response_code = models.CharField(max_length=32, blank=True)
    response_message = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    #: The order's ``refunded_amount`` when this refund was sent: on success the total
    #: becomes this plus ``amount``, however many times the answer is applied.
    refunded_before = models.PositiveBigIntegerField(default=0)
    #: When ``flexcharge_sync`` settled an unconfirmed refund from FlexCharge's total.
    settled_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["outcome"], name="flexcharge_refund_outcome")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="flexcharge_refund_amount_gt_0")
        ]

    def __str__(self) -> str:
        return f"refund {format_amount(self.amount, self.currency)} of {self.order.order_id}"


class CallAttempt(models.Model):
    """One call to FlexCharge (one endpoint method, after its token and 401 retry), as it went.

    Written by the layer that makes the call (``attempts.record_call``), never by
    the client, so the HTTP code stays free of database writes. ``error`` is the
    app's own safe description of a failure, scrubbed again before it is stored:
    never a card number, key or token. Pruned by age with the webhook events.
    """

    #: The account the call was made for (its row's).
    account = account_field(db_index=True)
    order = models.ForeignKey(
        FlexChargeOrder, null=True, blank=True, on_delete=models.CASCADE, related_name="calls"
    )
    transmission = models.ForeignKey(
        Transmission, null=True, blank=True, on_delete=models.CASCADE, related_name="calls"
    )
    refund = models.ForeignKey(
        Refund, null=True, blank=True, on_delete=models.CASCADE, related_name="calls"
    )
    #: Low-cardinality name such as ``POST evaluate`` or ``POST orders/{id}/refund``.
    endpoint = models.CharField(max_length=64)
    #: The row's delivery attempt (``attempts`` after the claim); 1 for one-off calls.
    attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    #: The last HTTP status FlexCharge answered with; None when no answer came.
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    trace_id = models.CharField(_("FlexCharge trace id"), max_length=128, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("FlexCharge call")
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["started_at"], name="flexcharge_call_started")]

    def __str__(self) -> str:
        return f"{self.endpoint} #{self.attempt} -> {self.http_status or 'no answer'}"

    @property
    def succeeded(self) -> bool:
        return not self.error and self.http_status is not None and self.http_status < 300


class StatusChange(models.Model):
    """One change of an order's status, with who or what caused it (``transitions.transition``)."""

    order = models.ForeignKey(
        FlexChargeOrder, on_delete=models.CASCADE, related_name="status_changes"
    )
    previous = models.CharField(max_length=24, choices=FlexChargeOrder.Status.choices)
    status = models.CharField(max_length=24, choices=FlexChargeOrder.Status.choices)
    #: Human-readable cause: "/evaluate answered APPROVED", "webhook order.approved", "refund"...
    cause = models.CharField(max_length=255, blank=True)
    event = models.ForeignKey(
        WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("status change")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.previous} -> {self.status}"
