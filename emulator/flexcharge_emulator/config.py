"""Configuration of one emulator instance.

The defaults are the credentials the example project, ``make demo`` and the
test settings use, so ``EmulatorConfig()`` gives a working emulator without
any FlexCharge account. Every delay is in seconds of real time: the emulator
has no virtual clock, tests shorten the delays or resolve orders through the
control endpoints instead.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_APP_KEY = "emu-app-key"
DEFAULT_APP_SECRET = "emu-app-secret"  # noqa: S105 - a public, emulator-only value
DEFAULT_MID = "4f3c2a10-6b7e-4d59-9a1f-0e5d2c7b8a61"
DEFAULT_SITE_ID = "9b2e7c44-1d3a-4e8f-b6c5-72a0f1d9e3b8"
DEFAULT_TOKENIZATION_KEY = "emu-tokenization-key"
DEFAULT_SUBSCRIBER_KEY = base64.b64encode(
    b"django-flexcharge emulator subscriber key, not a secret"
).decode("ascii")
DEFAULT_PORT = 8765
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (brackets and a port allowed)."""
    name = (host or "").strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class EmulatorConfig:
    app_key: str = DEFAULT_APP_KEY
    app_secret: str = DEFAULT_APP_SECRET
    mid: str = DEFAULT_MID
    site_id: str = DEFAULT_SITE_ID
    tokenization_key: str = DEFAULT_TOKENIZATION_KEY
    subscriber_key: str = DEFAULT_SUBSCRIBER_KEY
    #: Where webhooks go; None disables delivery (events are still recorded).
    webhook_url: str | None = None
    #: Seconds until a managed MIT that will be rescued completes (None: only via control).
    rescue_delay: float | None = 2.0
    #: Seconds until a managed MIT that will not be rescued expires (None: only via control).
    expire_delay: float | None = 4.0
    #: Seconds a new managed MIT stays Draft before FlexCharge "picks it up" (Processing).
    pickup_delay: float = 0.5
    #: Access-token lifetime; FlexCharge's is 10 minutes (flexcharge-api.md §3).
    token_ttl: int = 600
    #: Loopback unless told otherwise: the emulator holds no real secret, but its
    #: control plane makes it send signed deliveries.
    host: str = "127.0.0.1"
    #: 0 asks the OS for a free port; read it back from ``Emulator.port``.
    port: int = 0
    # Webhook redelivery policy: invented, FlexCharge documents none (§11.5).
    webhook_timeout: float = 5.0
    webhook_max_attempts: int = 10
    webhook_backoff: float = 0.5
    webhook_backoff_max: float = 30.0
    #: Seconds an idle keep-alive connection is held before the server closes it.
    idle_timeout: float = 30.0
    #: Redeliver with the first attempt's exact body, nonce and date (``IsResent``
    #: stays false) instead of fresh ones: FlexCharge may do either (undocumented).
    webhook_resend_original_headers: bool = False
    #: Answer 409 to an ``/evaluate`` replay (same idempotency key and body) instead
    #: of replaying the first answer: FlexCharge's replay behaviour is undocumented.
    evaluate_replay_conflict: bool = False
    #: What ``/_emulator/...`` requests must send as ``X-Emulator-Token``; random per run.
    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)

    def backoff(self, attempt: int) -> float:
        """Delay before delivery attempt ``attempt + 1``: 0.5, 1, 2, 4 ... capped."""
        return float(min(self.webhook_backoff * (2 ** (attempt - 1)), self.webhook_backoff_max))


def webhook_host(url: str) -> str:
    """The host FlexCharge signs and sends as ``Host`` for a delivery to ``url``.

    HTTP clients send ``host:port`` only for a non-default port, and Django's
    ``request.get_host()`` reports the ``Host`` header as received, so a site
    on ``http://127.0.0.1:8000/`` verifies against ``127.0.0.1:8000`` and one
    on ``https://billing.example.com/`` against ``billing.example.com``.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]  # never sign user:password@
    default_port = {"http": "80", "https": "443"}.get(parts.scheme)
    host, sep, port = netloc.rpartition(":")
    if sep and port == default_port and not netloc.endswith("]"):
        return host
    return netloc
