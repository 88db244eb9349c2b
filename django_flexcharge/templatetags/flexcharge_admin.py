"""``{% load flexcharge_admin %}``: the order page's timeline and toolbar.

Inclusion tags, so ``admin/orders.py`` needs no ``change_view`` override: the
order admin's ``change_form.html`` renders them from ``original``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

register = template.Library()


@register.inclusion_tag("django_flexcharge/admin/timeline.html")
def order_timeline_for(order: Any) -> dict[str, Any]:
    # Imported here: Django's template checks import every tag library, and
    # ``..admin`` registers with the admin site, absent from sites without the admin.
    from ..admin.timeline import order_timeline

    return {"entries": order_timeline(order) if order is not None and order.pk else []}


@register.inclusion_tag("django_flexcharge/admin/toolbar.html", takes_context=True)
def order_toolbar(context: template.Context, order: Any) -> dict[str, Any]:
    """Refund and Cancel (``flexcharge_buttons`` from the admin's ``change_view``: links to
    the actions' confirmation pages) and Sync / Retry now (POST forms), in one toolbar."""
    from ..admin.buttons import toolbar

    request = context.get("request")
    links = [
        {
            "name": name,
            "label": label,
            "url": reverse(f"admin:django_flexcharge_flexchargeorder_{name}", args=[order.pk]),
        }
        for name, label in context.get("flexcharge_buttons") or []
    ]
    return {
        "links": links,
        "buttons": toolbar(request, order) if request is not None else [],
        "csrf_token": context.get("csrf_token"),
    }
