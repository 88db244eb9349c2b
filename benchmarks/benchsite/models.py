"""The host's own tables, and the rows the floors write.

``FloorRow`` mirrors ``django_flexcharge.models.Transmission`` field for field,
with the same unique and plain indexes, so "one more INSERT of a row of
similar size" costs what the package's own INSERT costs at best.
"""

import uuid

from django.db import models
from django.utils import timezone


class HostOrder(models.Model):
    """What a checkout writes anyway: the host's paid order."""

    number = models.CharField(max_length=64, unique=True)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    email = models.EmailField()
    status = models.CharField(max_length=16, default="paid")
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.number


class FloorRow(models.Model):
    """Transmission's shape: the floor's extra INSERT (approval and caller floors)."""

    order_id = models.CharField(max_length=100)
    transaction_id = models.CharField(max_length=100)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    payload = models.JSONField()
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True)
    status = models.CharField(max_length=16, default="queued")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="bench_floor_due"),
            models.Index(fields=["order_id"], name="bench_floor_order"),
            models.Index(fields=["created"], name="bench_floor_created"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["order_id", "transaction_id"], name="bench_floor_once")
        ]

    def __str__(self) -> str:
        return f"floor {self.order_id}"


class RawDelivery(models.Model):
    """The webhook floor: the raw body, stored with one INSERT."""

    body = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"delivery {self.pk}"
