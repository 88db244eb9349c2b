"""``{% load flexcharge_admin %}``: the order page's timeline and toolbar, status badges, amounts.

Inclusion tags, so ``admin/orders.py`` needs no ``change_view`` override: the
order admin's ``change_form.html`` renders them from ``original``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..admin.buttons import toolbar
from ..admin.timeline import order_timeline
from ..display import money, status_badge

register = template.Library()


@register.inclusion_tag("django_flexcharge/admin/timeline.html")
def order_timeline_for(order: Any) -> dict[str, Any]:
    return {"entries": order_timeline(order) if order is not None and order.pk else []}


@register.inclusion_tag("django_flexcharge/admin/toolbar.html", takes_context=True)
def order_toolbar(context: template.Context, order: Any) -> dict[str, Any]:
    request = context.get("request")
    return {
        "buttons": toolbar(request, order) if request is not None else [],
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag
def flexcharge_status(status: str) -> SafeString:
    return status_badge(status)


@register.simple_tag
def flexcharge_money(amount: int, currency: str) -> SafeString:
    return format_html("{}", money(amount, currency))
