"""The app's receivers of the host's ``payment_approved`` / ``payment_declined`` signals."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from .signals import payment_approved, payment_declined


@receiver(payment_approved, dispatch_uid="django_flexcharge.transmit_approved")
def transmit_on_approval(sender: Any, payment: Any, **kwargs: Any) -> None:
    from .services import transmit_approved_payment

    transmit_approved_payment(
        payment,
        card=kwargs.get("card"),
        payer=kwargs.get("payer"),
        billing=kwargs.get("billing"),
        account=kwargs.get("account", "default"),
    )


@receiver(payment_declined, dispatch_uid="django_flexcharge.evaluate_declined")
def evaluate_on_decline(sender: Any, payment: Any, **kwargs: Any) -> None:
    from .services import evaluate_declined_payment

    # Missing inputs reach the service as None, which refuses them naming the field.
    card: Any = kwargs.get("card")
    payer: Any = kwargs.get("payer")
    billing: Any = kwargs.get("billing")
    evaluate_declined_payment(
        payment,
        card=card,
        payer=payer,
        billing=billing,
        subscription=kwargs.get("subscription"),
        is_mit=kwargs.get("is_mit", True),
        account=kwargs.get("account"),
    )
