"""Talking to an emulator started in the test's process: tokens, evaluations, a webhook receiver."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from flexcharge_emulator import RESCUE_CARD, Emulator, EmulatorConfig

CONFIG = EmulatorConfig()


class Receiver:
    """A webhook endpoint: records deliveries, answers with queued status codes (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/flexcharge/webhook/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


def make_emulator(**overrides: Any) -> Emulator:
    options: dict[str, Any] = {"rescue_delay": None, "expire_delay": None, "pickup_delay": 0.05}
    options.update(overrides)
    return Emulator(EmulatorConfig(**options)).start()


def session_for(emulator: Emulator) -> requests.Session:
    session = requests.Session()
    token = session.post(
        emulator.base_url + "oauth2/token",
        json={"AppKey": CONFIG.app_key, "AppSecret": CONFIG.app_secret},
    ).json()["accessToken"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def evaluate_body(
    *, amount: int = 1999, card: str = RESCUE_CARD, token: bool = False, managed: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "isDeclined": True,
        "idempotencyKey": str(uuid.uuid4()),
        "orderId": f"INV-{uuid.uuid4().hex[:8]}",
        "isMIT": True,
        "transaction": {
            "id": "ch_1",
            "amount": amount,
            "currency": "USD",
            "responseCode": "51",
            "responseCodeSource": "stripe",
            "avsResultCode": "NA",
            "cvvResultCode": "NA",
            "cavvResultCode": "NA",
        },
        "payer": {"email": "jane@example.com"},
        "billingInformation": {"firstName": "Jane", "lastName": "Doe", "countryCode": "US"},
        "paymentMethod": {"cardNumber": card, "token": token},
    }
    if managed:
        body["expiryDateUtc"] = (datetime.now(UTC) + timedelta(days=21)).isoformat()
    return body


def submit(emulator: Emulator, session: requests.Session, **kwargs: Any) -> str:
    """Evaluate a managed MIT; its orderSessionKey."""
    response = session.post(emulator.base_url + "evaluate", json=evaluate_body(**kwargs))
    return str(response.json()["orderSessionKey"])


def card_body(pan: str = RESCUE_CARD) -> dict[str, Any]:
    return {
        "payment_method": {
            "credit_card": {
                "first_name": "Jane",
                "last_name": "Doe",
                "number": pan,
                "verification_value": "999",
                "month": "09",
                "year": "2030",
            }
        }
    }
