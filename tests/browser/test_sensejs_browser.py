"""sensejs.js adds the sense-key field only to forms that post to the page's own origin.

A page served from a local server of this test (no Django needed) holds POST
forms to itself and elsewhere; the real ``sensejs.js`` is loaded and given a key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

SCRIPT = (
    Path(__file__).resolve().parents[2] / "django_flexcharge/static/django_flexcharge/sensejs.js"
)
PAGE = """<!doctype html><html><body>
<form id="relative" method="post" action="/pay/"><button>pay</button></form>
<form id="no-action" method="post"><button>pay</button></form>
<form id="absolute-home" method="post" action="{origin}/pay/"><button>pay</button></form>
<form id="foreign" method="post" action="https://evil.example/collect"><button>x</button></form>
<form id="protocol-relative" method="post" action="//evil.example/collect"><button>x</button></form>
<form id="other-port" method="post" action="http://127.0.0.1:9/collect"><button>x</button></form>
<form id="formaction" method="post" action="/pay/">
  <button formaction="https://evil.example/collect">x</button></form>
<form id="clobbered" method="post" action="https://evil.example/collect">
  <input name="action" value="/pay/"></form>
<form id="get" method="get" action="/search/"><button>search</button></form>
</body></html>"""
HOME = {"relative", "no-action", "absolute-home"}


@pytest.fixture
def origin() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/sensejs.js"):
                body, kind = SCRIPT.read_bytes(), "text/javascript"
            else:
                page = PAGE.format(origin=f"http://127.0.0.1:{self.server.server_port}")
                body, kind = page.encode(), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_sense_key_is_added_only_to_forms_posting_to_this_origin(page: Any, origin: str):
    page.goto(f"{origin}/checkout/")
    page.add_script_tag(url=f"{origin}/sensejs.js")
    page.evaluate("window.flexchargeSenseKey('sense-from-widget')")

    carrying = page.eval_on_selector_all(
        "form",
        """forms => forms.filter(f => f.querySelector('input[name=flexcharge_sense_key]'))
                        .map(f => f.id)""",
    )

    assert set(carrying) == HOME
    values = page.eval_on_selector_all(
        "input[name=flexcharge_sense_key]", "inputs => inputs.map(i => i.value)"
    )
    assert values == ["sense-from-widget"] * len(HOME)
