"""Admin registrations: the order admin with its actions and dashboard, and the audit models."""

from .audit import (
    ReadOnlyAdmin,
    RefundAdmin,
    TransmissionAdmin,
    VaultedCardAdmin,
    WebhookEventAdmin,
)
from .orders import FlexChargeOrderAdmin

__all__ = [
    "FlexChargeOrderAdmin",
    "ReadOnlyAdmin",
    "RefundAdmin",
    "TransmissionAdmin",
    "VaultedCardAdmin",
    "WebhookEventAdmin",
]
