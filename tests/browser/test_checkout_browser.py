"""Checkout in a real browser: SenseJS loads, its sense key fills the form and reaches /tokenize.

The example site runs as a subprocess (``example_site.ExampleSite``) against
the FlexCharge emulator running in this process, and loads a stub SenseJS
widget (``stub_sensejs.js``) from a local server of its own.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from flexcharge_emulator import Emulator, EmulatorConfig

from .example_site import CUSTOMER, ExampleSite, SenseJSStub

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


class Site:
    """The running example site and what FlexCharge and the widget host saw of it."""

    def __init__(self, site: ExampleSite, emulator: Emulator, stub: SenseJSStub) -> None:
        self.site, self.emulator, self.stub = site, emulator, stub
        self.url = site.url
        #: ``payment_method.sense_key`` of every /tokenize the emulator received ("" if none).
        self.tokenize_sense_keys: list[str] = []

    def log_tail(self) -> str:
        return self.site.log_tail()


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    emulator = Emulator(EmulatorConfig(webhook_url=None, rescue_delay=None, expire_delay=None))
    emulator.start()
    stub = SenseJSStub()
    config = emulator.config
    site = ExampleSite(
        tmp_path_factory.mktemp("example-site"),
        {
            "FLEXCHARGE_APP_KEY": config.app_key,
            "FLEXCHARGE_APP_SECRET": config.app_secret,
            "FLEXCHARGE_MID": config.mid,
            "FLEXCHARGE_SITE_ID": config.site_id,
            "FLEXCHARGE_TOKENIZATION_KEY": config.tokenization_key,
            "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": config.subscriber_key,
            "FLEXCHARGE_API_URL": emulator.base_url,
            "FLEXCHARGE_SENSEJS_URL": stub.url,
        },
    )
    running = Site(site, emulator, stub)
    tokenize = emulator.api.tokenize

    def recording_tokenize(query: Any, body: Any) -> Any:
        # Only the sense key is kept: the body also holds the PAN and CVV.
        method = body.get("payment_method") if isinstance(body, dict) else None
        running.tokenize_sense_keys.append(str((method or {}).get("sense_key") or ""))
        return tokenize(query, body)

    emulator.api.tokenize = recording_tokenize  # type: ignore[method-assign]
    try:
        site.wait_ready()
        yield running
    finally:
        site.stop()
        stub.stop()
        emulator.stop()


def log_in(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/login/")
    page.fill("#id_username", CUSTOMER["username"])
    page.fill("#id_password", CUSTOMER["password"])
    page.click("form.narrow button[type=submit]")
    expect(page).to_have_url(f"{site.url}/account/")


def open_checkout(page: Any, site: Site, plan: str) -> str:
    """Open the plan's checkout page, asserting it fetched the widget; returns the order id."""
    checkout_url = f"{site.url}/checkout/{plan}/"
    with page.expect_request(lambda request: request.url == site.stub.url) as widget:
        page.goto(checkout_url)
    # Requested by the checkout page itself (Django's Referrer-Policy, same-origin,
    # keeps the Referer from the widget's host, so the page's frame tells).
    assert widget.value.frame.url == checkout_url
    assert widget.value.response().status == 200
    match = re.search(r"order (\S+)", page.inner_text(".price"))
    assert match, page.inner_text(".price")
    return match.group(1)


def test_checkout_carries_the_sense_key_to_tokenize(page: Any, example_site: Site) -> None:
    site = example_site
    script_errors: list[Any] = []
    page.on("pageerror", lambda error: script_errors.append(error))
    log_in(page, site)
    order_id = open_checkout(page, site, "basic")

    # The widget came from FLEXCHARGE_SENSEJS_URL (the stub's server saw the GET)...
    assert "/widget.js" in site.stub.requests
    # ...and got the loader's queued init and the per-order call with this page's order id.
    config = site.emulator.config
    expect(page.locator("#id_flexcharge_sense_key")).to_have_value(f"stub-sense-{order_id}")
    seen = page.evaluate("window.__flexchargeStub")
    assert seen["init"] == [config.mid, config.site_id]
    assert seen["orders"] == [order_id]
    assert page.locator("input[name=flexcharge_sense_key]").count() == 1

    page.fill("#id_card_number", "4111 1111 1111 1111")
    page.select_option("#id_exp_month", "9")
    page.select_option("#id_exp_year", str(dt.date.today().year + 2))
    page.fill("#id_cvv", "737")
    page.fill("#id_address_line1", "123 Main St.")
    page.fill("#id_city", "San Francisco")
    page.fill("#id_state", "CA")
    page.fill("#id_zipcode", "94111")
    page.fill("#id_country_code", "US")
    page.fill("#id_phone", "+15551234567")
    page.click("form.checkout button[type=submit]")

    expect(page).to_have_url(f"{site.url}/account/")
    expect(page.locator("p.message.success")).to_have_text(
        f"Welcome to Basic! Order {order_id} was approved."
    )
    subscription = page.locator("section.subscription", has_text="Basic")
    expect(subscription.locator("h2 .status")).to_have_text("active")
    expect(subscription).to_contain_text("1111")  # the card FlexCharge vaulted
    # The key the widget handed the page is what the site sent to FlexCharge's vault.
    assert site.tokenize_sense_keys == [f"stub-sense-{order_id}"]
    with site.emulator.state.lock:
        vaulted = [entry.last_four for entry in site.emulator.state.tokens.values()]
    assert vaulted == ["1111"]
    assert script_errors == []


def test_sense_key_also_arrives_through_the_callback(page: Any, example_site: Site) -> None:
    """The other channel sensejs.js offers: the function passed to the per-order call."""
    page.add_init_script("window.__flexchargeStubConfig = {channel: 'callback'};")
    log_in(page, example_site)
    order_id = open_checkout(page, example_site, "pro")
    expect(page.locator("#id_flexcharge_sense_key")).to_have_value(f"stub-sense-{order_id}")
    assert page.evaluate("window.flexchargeSenseKey.current()") == f"stub-sense-{order_id}"


def test_a_form_without_the_field_gets_one_carrying_the_key(page: Any, example_site: Site) -> None:
    """A host that renders only {% flexcharge_sensejs %} still posts flexcharge_sense_key."""
    site = example_site
    page.goto(f"{site.url}/login/")  # a POST form, no sense key field
    assert page.locator("input[name=flexcharge_sense_key]").count() == 0
    page.add_script_tag(url=f"{site.url}/static/django_flexcharge/sensejs.js")
    page.evaluate("window.flexchargeSenseKey('sense-from-widget')")
    field = page.locator("form input[type=hidden][name=flexcharge_sense_key]")
    expect(field).to_have_count(page.locator("form[method=post]").count())
    expect(field.first).to_have_value("sense-from-widget")
