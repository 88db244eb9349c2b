"""``{% load flexcharge %}``: the SenseJS snippet and the hidden sense-key field for checkout pages.

Thin ``simple_tag``s in the manner of django-htmx: HTML is built with
``format_html`` and values placed inside ``<script>`` are JSON with ``<``,
``>`` and ``&`` escaped (what ``json_script`` does), so an order id holding
``</script>`` or quotes cannot leave the string it sits in.

What FlexCharge's widget expects after ``init`` is not documented in full
(flexcharge-api.md §12): the name of the per-order call and how the page
receives the sense key are settings, read here on use (see docs/checkout.md).
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..conf import conf as default_conf

register = template.Library()

#: The hidden input the page's script fills and the checkout view reads.
SENSE_KEY_FIELD = "flexcharge_sense_key"

# Same characters ``django.utils.html.json_script`` escapes; its table is private.
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}

# The widget's documented loader shape: an ``fc`` stub that queues calls until
# the real script (injected async) replaces it. ``init`` runs only when this
# snippet creates the stub, so a page that renders the tag twice inits once.
# The injected script inherits the nonce for CSP "nonce + strict-dynamic" sites.
_LOADER = (
    "(function(w,d,u,m,s){{if(w.fc)return;"
    "var f=w.fc=function(){{f.q.push(arguments)}};f.q=[];"
    "var e=d.createElement('script'),c=d.currentScript;e.async=true;e.src=u;"
    "if(c&&c.nonce)e.nonce=c.nonce;(d.head||d.documentElement).appendChild(e);"
    "f('init',m,s)}})(window,document,{url},{mid},{site});"
)
_INVOKE = "window.fc({invoke},{order_id},window.flexchargeSenseKey);"


def js_value(value: Any) -> SafeString:
    """``value`` as a JS literal safe inside a ``<script>`` element."""
    return mark_safe(json.dumps(value).translate(_SCRIPT_ESCAPES))  # noqa: S308 - escaped above


def _nonce_attr(nonce: Any) -> SafeString:
    return format_html(' nonce="{}"', nonce) if nonce else SafeString("")


@register.simple_tag(takes_context=True)
def flexcharge_sensejs(
    context: template.Context, order_id: Any = None, nonce: Any = None, account: Any = "default"
) -> SafeString:
    """Load SenseJS, ``init`` it with the MID and site id, and tie it to ``order_id`` when given.

    ``nonce`` defaults to the ``csp_nonce`` context variable (Django's CSP
    context processor), so CSP sites get the attribute without passing it.
    ``account`` is the FlexCharge account (alias) whose MID and site id to use.
    """
    conf = default_conf.account(str(account))
    if not conf.is_configured("FLEXCHARGE_MID", "FLEXCHARGE_SITE_ID"):
        return SafeString("<!-- FlexCharge SenseJS: FLEXCHARGE_MID or FLEXCHARGE_SITE_ID unset -->")
    if nonce is None:
        nonce = context.get("csp_nonce")
    nonce_attr = _nonce_attr(nonce)
    code = _LOADER.format(
        url=js_value(conf.SENSEJS_URL), mid=js_value(conf.MID), site=js_value(conf.SITE_ID)
    )
    if order_id not in (None, ""):
        invoke = conf.SENSEJS_INVOKE
        code += _INVOKE.format(invoke=js_value(str(invoke)), order_id=js_value(str(order_id)))
    # The key receiver goes first and loads synchronously (it is tiny and
    # same-origin): ``window.flexchargeSenseKey`` must exist before the widget
    # can call it.
    return format_html(
        '<script src="{}" data-key-event="{}" data-key-global="{}"{}></script>\n'
        "<script{}>{}</script>",
        static("django_flexcharge/sensejs.js"),
        conf.SENSEJS_KEY_EVENT,
        conf.SENSEJS_KEY_GLOBAL,
        nonce_attr,
        nonce_attr,
        mark_safe(code),  # noqa: S308 - every value in it went through js_value()
    )


@register.simple_tag
def flexcharge_sense_key_field(value: Any = "", id: str = "id_flexcharge_sense_key") -> SafeString:
    """The hidden ``flexcharge_sense_key`` input; ``value`` keeps a key across a re-rendered form."""
    return format_html(
        '<input type="hidden" name="{}" id="{}" value="{}" data-flexcharge-sense-key>',
        SENSE_KEY_FIELD,
        id,
        value or "",
    )
