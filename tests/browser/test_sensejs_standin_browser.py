"""A local checkout gets a sense key: with ``FLEXCHARGE_API_URL`` on the emulator and no
``FLEXCHARGE_SENSEJS_URL``, the tag loads the emulator's SenseJS stand-in, which fills
the ``flexcharge_sense_key`` field in a real browser."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings
from django.template import Context, Template
from django.test import override_settings

from flexcharge_emulator import Emulator, EmulatorConfig

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

RECEIVER = "django_flexcharge/static/django_flexcharge/sensejs.js"


def test_the_tag_with_the_emulator_gives_the_checkout_a_sense_key(page: Any) -> None:
    with Emulator(EmulatorConfig(webhook_url=None)) as emu:
        with override_settings(FLEXCHARGE_API_URL=emu.base_url, FLEXCHARGE_SENSEJS_URL=None):
            html = Template(
                "{% load flexcharge %}<html><body>"
                '<form method="post">{% flexcharge_sense_key_field %}</form>'
                "{% flexcharge_sensejs order_id='INV-7' %}</body></html>"
            ).render(Context())
        assert f"{emu.url}/sensejs/widget.js" in html
        receiver = open(RECEIVER, encoding="utf-8").read()  # noqa: SIM115

        # The page and the app's receiver script, served from 127.0.0.1 as runserver would:
        # Chromium lets a loopback page load the loopback emulator's script (a page
        # from a public origin would need the local-network permission).
        class Shop(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                script = self.path.endswith("/sensejs.js")
                body = (receiver if script else html).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript" if script else "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with page.expect_response(f"{emu.url}/sensejs/widget.js") as widget:
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/checkout/")
        finally:
            server.shutdown()
            server.server_close()
        assert widget.value.status == 200
        field = page.locator("input[name=flexcharge_sense_key]")
        expect(field).to_have_value(re.compile(r"^emu-sense-[0-9a-f]{32}$"))
        # One key per order id: the widget's state keeps it for INV-7.
        state = page.evaluate("window.fc.emulator")
        assert state["mid"] == settings.FLEXCHARGE_MID  # the loader's queued init ran
        assert list(state["keys"]) == ["INV-7"]
