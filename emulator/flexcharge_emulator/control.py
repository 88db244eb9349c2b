"""The control plane's guard.

``/_emulator/...`` (approve, expire, send any event, faults, reset...) can
make the emulator send signed deliveries, so it is not open to whoever can
reach the port, nor to a web page in the developer's browser:

* every request carries the per-run token (``X-Emulator-Token``) that the
  emulator prints at start (``--control-token`` or
  ``FLEXCHARGE_EMULATOR_CONTROL_TOKEN`` fix it for scripts);
* ``Host`` must be a loopback name or the configured bind host, which defeats
  DNS rebinding (a page's own host name pointed at 127.0.0.1);
* a browser's ``Origin`` must be the emulator itself, which defeats a
  cross-site form or fetch (CSRF).

The client is ``django_flexcharge.testing.EmulatorControl(url, token)`` (an
HTTP client; the emulator itself needs none). ``TOKEN_HEADER`` is public API:
that client and scripts send it.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from .config import EmulatorConfig, is_loopback_host

TOKEN_HEADER = "X-Emulator-Token"  # noqa: S105 - a header name
TOKEN_ENV = "FLEXCHARGE_EMULATOR_CONTROL_TOKEN"  # noqa: S105 - a variable name
#: A wildcard bind address is no host name a request can carry.
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104


def _host_name(value: str) -> str:
    """``value`` (a Host header or netloc) without its port, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def allowed_host(config: EmulatorConfig, host: str) -> bool:
    name = _host_name(host)
    bind = _host_name(config.host)
    return is_loopback_host(name) or (name == bind and bind not in WILDCARD_BINDS)


def refusal(config: EmulatorConfig, port: int, headers: Any) -> tuple[int, str] | None:
    """(status, reason) when a control request must be refused, else None.

    ``headers`` is case-insensitive (``http.server``'s message, ``request.headers``).
    """
    if not allowed_host(config, headers.get("Host") or ""):
        return 403, "Host is not a loopback name or the emulator's bind host (DNS rebinding?)"
    origin = headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        same = parts.scheme == "http" and allowed_host(config, parts.netloc) and parts.port == port
        if not same:
            return 403, "cross-origin control requests are refused"
    if (headers.get("Sec-Fetch-Site") or "").lower() in {"cross-site", "same-site"}:
        return 403, "cross-site control requests are refused"
    given = (headers.get(TOKEN_HEADER) or "").encode()
    if not given or not hmac.compare_digest(given, config.control_token.encode()):
        return 401, f"the {TOKEN_HEADER} header must carry the token the emulator printed at start"
    return None
