"""The emulator's credentials are public: refuse them wherever FlexCharge is not the emulator.

``.env.example``, the example project and the emulator ship one app key,
secret, tokenization key and subscriber key that anyone can read. A site whose
``FLEXCHARGE_API_URL`` is not a loopback address (so not the emulator) must
never use them: with the public subscriber key anyone can sign a delivery that
marks an order paid. The system checks report it (E015, every mode); the
webhook view and the client refuse at run time, in case the checks never ran
(gunicorn does not run them).

The values and the loopback test are copied from the emulator (a distribution
of its own, not installed in production): the app must know them without it.
``tests/test_public_credentials.py`` asserts the copies equal the emulator's.
"""

from __future__ import annotations

import base64
import ipaddress
from urllib.parse import urlsplit

from .exceptions import FlexChargeConfigurationError

__all__ = ["is_loopback_host", "is_loopback_url", "is_public", "refuse_public"]


#: The emulator's public credentials (``flexcharge_emulator.config.DEFAULT_*``).
EMULATOR_APP_KEY = "emu-app-key"
EMULATOR_APP_SECRET = "emu-app-secret"  # noqa: S105 - public, emulator-only
EMULATOR_TOKENIZATION_KEY = "emu-tokenization-key"
EMULATOR_SUBSCRIBER_KEY = base64.b64encode(
    b"django-flexcharge emulator subscriber key, not a secret"
).decode("ascii")
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


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine (where the emulator runs)."""
    return is_loopback_host(urlsplit(url or "").hostname or "")


def public_values() -> dict[str, str]:
    """Setting name -> the emulator's public value for it."""
    return {
        "FLEXCHARGE_APP_KEY": EMULATOR_APP_KEY,
        "FLEXCHARGE_APP_SECRET": EMULATOR_APP_SECRET,
        "FLEXCHARGE_TOKENIZATION_KEY": EMULATOR_TOKENIZATION_KEY,
        "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": EMULATOR_SUBSCRIBER_KEY,
    }


def is_public(setting: str, value: object) -> bool:
    """True when ``value`` is the emulator's public value for ``setting``."""
    public = public_values().get(setting)
    return public is not None and isinstance(value, str) and value.strip() == public


def refuse_public(setting: str, value: object, api_url: str) -> None:
    """Raise ``FlexChargeConfigurationError`` when ``value`` is public and ``api_url`` is
    not the emulator. The message names the setting, never the value."""
    if is_public(setting, value) and not is_loopback_url(api_url):
        raise FlexChargeConfigurationError(
            f"{setting} is the FlexCharge emulator's public value, which anyone can read, "
            f"but FLEXCHARGE_API_URL ({urlsplit(api_url).hostname}) is not the emulator. "
            "Use the value from the FlexCharge portal.",
            setting=setting,
        )
