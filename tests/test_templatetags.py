"""The ``flexcharge`` template library: SenseJS snippet and hidden sense-key field."""

from __future__ import annotations

import json
import re

import pytest
from django.template import Context, Template
from django.test import override_settings

from tests.settings import FLEXCHARGE_MID, FLEXCHARGE_SITE_ID


def render(source: str, **context: object) -> str:
    return Template("{% load flexcharge %}" + source).render(Context(context))


def scripts(html: str) -> list[str]:
    """Bodies of the inline ``<script>`` elements."""
    return re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)


@pytest.mark.parametrize("missing", ["FLEXCHARGE_MID", "FLEXCHARGE_SITE_ID"])
def test_unconfigured_renders_only_a_comment(missing: str) -> None:
    with override_settings(**{missing: ""}):
        html = render("{% flexcharge_sensejs order_id='INV-1' %}").strip()
    assert html.startswith("<!--")
    assert html.endswith("-->")
    assert "<script" not in html


def test_loader_inits_with_mid_and_site_id() -> None:
    html = render("{% flexcharge_sensejs %}")
    body = scripts(html)[-1]
    assert "w.fc=function(){f.q.push(arguments)}" in body
    assert "e.async=true" in body
    assert (
        f'(window,document,"https://sensejs.flexfactor.io/widget.js",'
        f'"{FLEXCHARGE_MID}","{FLEXCHARGE_SITE_ID}")' in body
    )
    assert "f('init',m,s)" in body
    # Without an order id there is no per-order call.
    assert "window.fc(" not in body


def test_receiver_script_comes_first_and_loads_synchronously() -> None:
    html = render("{% flexcharge_sensejs %}")
    first = re.search(r"<script[^>]*>", html)
    assert first is not None
    tag = first.group(0)
    assert 'src="/static/django_flexcharge/sensejs.js"' in tag
    assert "async" not in tag
    assert "defer" not in tag
    assert 'data-key-event="flexcharge:sensekey"' in tag


@override_settings(FLEXCHARGE_SENSEJS_URL="https://cdn.example.test/sense.js?v=1&x=2")
def test_script_url_comes_from_the_setting() -> None:
    body = scripts(render("{% flexcharge_sensejs %}"))[-1]
    assert '"https://cdn.example.test/sense.js?v=1\\u0026x=2"' in body


def test_order_id_is_passed_to_the_invoke_call() -> None:
    body = scripts(render("{% flexcharge_sensejs order_id=invoice %}", invoice="INV-100045"))[-1]
    assert 'window.fc("order","INV-100045",window.flexchargeSenseKey);' in body


@override_settings(FLEXCHARGE_SENSEJS_INVOKE="track")
def test_invoke_name_comes_from_the_setting() -> None:
    body = scripts(render("{% flexcharge_sensejs order_id=7 %}"))[-1]
    assert 'window.fc("track","7",window.flexchargeSenseKey);' in body


def test_order_id_cannot_break_out_of_the_script() -> None:
    evil = "</script><script>alert(1)</script>\"'&"
    html = render("{% flexcharge_sensejs order_id=evil %}", evil=evil)
    assert html.count("</script>") == 2
    assert "<script>alert" not in html
    body = scripts(html)[-1]
    literal = re.search(r'window\.fc\("order",(".*?"),window', body)
    assert literal is not None
    # The JS literal decodes back to exactly the order id.
    assert json.loads(literal.group(1)) == evil
    assert "\\u003C/script\\u003E" in literal.group(1)


@override_settings(FLEXCHARGE_MID='"><img src=x onerror=alert(1)>')
def test_settings_values_are_escaped_too() -> None:
    html = render("{% flexcharge_sensejs %}")
    assert "<img" not in html


def test_nonce_goes_on_every_script_tag() -> None:
    html = render("{% flexcharge_sensejs order_id='A' nonce=n %}", n='abc"123')
    tags = re.findall(r"<script[^>]*>", html)
    assert len(tags) == 2
    assert all('nonce="abc&quot;123"' in tag for tag in tags)


def test_nonce_defaults_to_the_csp_nonce_context_variable() -> None:
    html = render("{% flexcharge_sensejs %}", csp_nonce="r4nd0m")
    assert html.count('nonce="r4nd0m"') == 2


def test_no_nonce_attribute_without_a_nonce() -> None:
    tags = re.findall(r"<script[^>]*>", render("{% flexcharge_sensejs %}"))
    assert len(tags) == 2
    assert not any("nonce" in tag for tag in tags)


@override_settings(FLEXCHARGE_SENSEJS_KEY_EVENT="sense:ready", FLEXCHARGE_SENSEJS_KEY_GLOBAL="fc.k")
def test_key_channels_come_from_settings() -> None:
    html = render("{% flexcharge_sensejs %}")
    assert 'data-key-event="sense:ready"' in html
    assert 'data-key-global="fc.k"' in html


def test_sense_key_field() -> None:
    html = render("{% flexcharge_sense_key_field %}")
    assert html == (
        '<input type="hidden" name="flexcharge_sense_key" id="id_flexcharge_sense_key" '
        'value="" data-flexcharge-sense-key>'
    )


def test_sense_key_field_escapes_a_posted_value() -> None:
    html = render("{% flexcharge_sense_key_field value=v id='k2' %}", v='"><b>')
    assert 'value="&quot;&gt;&lt;b&gt;"' in html
    assert 'id="k2"' in html


@override_settings(
    FLEXCHARGE_ACCOUNTS={"brand-b": {"MID": "b-mid", "SITE_ID": "b-site", "SENSEJS_INVOKE": "x"}}
)
def test_account_uses_that_accounts_mid_and_site_id() -> None:
    body = scripts(render("{% flexcharge_sensejs order_id='INV-1' account='brand-b' %}"))[-1]
    assert '"b-mid","b-site")' in body
    assert FLEXCHARGE_MID not in body
    assert 'window.fc("x","INV-1",' in body
    default = scripts(render("{% flexcharge_sensejs %}"))[-1]
    assert f'"{FLEXCHARGE_MID}","{FLEXCHARGE_SITE_ID}")' in default


def test_unknown_account_is_named() -> None:
    from django_flexcharge.exceptions import FlexChargeConfigurationError

    with pytest.raises(FlexChargeConfigurationError, match="'nope'"):
        render("{% flexcharge_sensejs account='nope' %}")
