"""Typed, lazy access to the ``FLEXCHARGE_*`` Django settings.

Each property reads ``django.conf.settings`` when used, never at import time,
so ``override_settings`` works and a host may fill settings from anywhere
(django-environ in the example project). Required values raise
``FlexChargeConfigurationError`` naming the setting at the point of use; the
system checks report the same problems at start-up.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from . import setting_types as types
from .exceptions import FlexChargeConfigurationError
from .signing import key_problem

DEFAULT_API_URL = "https://api-sandbox.flex-charge.com/v1/"
DEFAULT_SENSEJS_URL = "https://sensejs.flexfactor.io/widget.js"
PRODUCTION_API_HOSTS = frozenset({"api.flex-charge.com", "api.flexfactor.io"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Where ``manage.py flexcharge_emulator`` serves its SenseJS stand-in (emulator/sensejs.py).
EMULATOR_SENSEJS_PATH = "/sensejs/widget.js"
#: What to do about a missing credential, in development and in production.
MISSING_HINT = (
    "Copy it from the FlexCharge portal into your settings, e.g. {name} = env({name!r}). "
    "To develop without a FlexCharge account, run `python manage.py flexcharge_emulator` "
    "and set FLEXCHARGE_API_URL = 'http://127.0.0.1:8765/v1/' and any values for the "
    "credentials (GUIDs for MID and SITE_ID): the emulator accepts the site's own."
)
SUBSCRIBER_KEYS = "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS"


def subscriber_key_entries(value: object) -> tuple[list[object], str]:
    """The entries of a ``FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS`` value, and what is wrong
    with its type ("" when it is a list or tuple, or unset).

    A string is split on commas (``"NEWKEY, "`` from an environment variable is
    two entries, the second blank) so each entry is judged on its own; the
    checks still report the string as the wrong type.
    """
    if isinstance(value, list | tuple):
        return list(value), ""
    if value is None:
        return [], "is None"
    if isinstance(value, str):
        if not value.strip():
            return [], ""
        if "," in value:
            return list(value.split(",")), "is a comma-separated str"
        return [value.strip()], "is a str"
    return [], f"is a {type(value).__name__}"


class FlexChargeSettings:
    """One property per setting; ``conf.FLEXCHARGE_MID`` and ``conf.MID`` both work.

    ``conf`` is the account ``"default"`` (the flat settings); ``conf.account(alias)``
    gives the same object for another account of ``FLEXCHARGE_ACCOUNTS`` (see ``accounts``).
    """

    alias = "default"

    def __getattr__(self, name: str) -> Any:
        # Full setting names, as django-cors-headers' conf exposes them.
        if name.startswith("FLEXCHARGE_"):
            return getattr(self, name.removeprefix("FLEXCHARGE_"))
        raise AttributeError(name)

    def _get(self, name: str, default: Any = None) -> Any:
        return getattr(settings, name, default)

    def account(self, alias: str) -> FlexChargeSettings:
        """The settings of account ``alias``; an unknown alias raises FlexChargeConfigurationError."""
        if alias == "default":
            return conf  # the hot path: no import, no lookup
        from .accounts import account_conf

        return account_conf(alias)

    def _required(self, name: str, *, secret: bool = True) -> str:
        value = self._get(name, "")
        if value is None or value == "":
            raise FlexChargeConfigurationError(
                f"{name} is not set. " + MISSING_HINT.format(name=name), setting=name
            )
        return types.as_str(name, value, secret=secret)

    def _str(self, name: str, default: str) -> str:
        value = self._get(name, default)
        return default if value is None else types.as_str(name, value)

    @property
    def APP_KEY(self) -> str:
        return self._required("FLEXCHARGE_APP_KEY")

    @property
    def APP_SECRET(self) -> str:
        return self._required("FLEXCHARGE_APP_SECRET")

    # Their GUID form is a system check (E021), not checked here: the tag escapes whatever it gets.
    @property
    def MID(self) -> str:
        return self._required("FLEXCHARGE_MID", secret=False)

    @property
    def SITE_ID(self) -> str:
        return self._required("FLEXCHARGE_SITE_ID", secret=False)

    @property
    def TOKENIZATION_KEY(self) -> str:
        return self._required("FLEXCHARGE_TOKENIZATION_KEY")

    @property
    def WEBHOOK_SUBSCRIBER_KEYS(self) -> list[str]:
        """The keys that may verify a delivery.

        A blank, short (under 16 bytes) or non-base64 entry is left out (never
        an empty HMAC key anyone can sign with); the system checks name each.
        The emulator's public key on a site not talking to the emulator raises.
        """
        entries, _ = subscriber_key_entries(self._get(SUBSCRIBER_KEYS, []))
        keys = [key.strip() for key in entries if isinstance(key, str) and not key_problem(key)]
        from .public_credentials import refuse_public

        for key in keys:
            refuse_public(SUBSCRIBER_KEYS, key, self.API_URL)
        return keys

    @property
    def API_URL(self) -> str:
        url = self._str("FLEXCHARGE_API_URL", DEFAULT_API_URL) or DEFAULT_API_URL
        return url if url.endswith("/") else url + "/"

    @property
    def SENSEJS_URL(self) -> str:
        """The setting; unset with the API on a loopback http URL (the emulator), its stand-in."""
        url = self._str("FLEXCHARGE_SENSEJS_URL", "")
        if url:
            return url
        try:
            api = urlsplit(self.API_URL)
        except types.SettingTypeError:
            return DEFAULT_SENSEJS_URL  # FLEXCHARGE_API_URL's own error says what is wrong
        if api.scheme == "http" and (api.hostname or "") in LOOPBACK_HOSTS:
            return f"http://{api.netloc}{EMULATOR_SENSEJS_PATH}"
        return DEFAULT_SENSEJS_URL

    @property
    def SENSEJS_INVOKE(self) -> str:
        """Name of the per-order SenseJS call, ``fc(<this>, orderId, callback)`` (undocumented)."""
        return self._str("FLEXCHARGE_SENSEJS_INVOKE", "order") or "order"

    @property
    def SENSEJS_KEY_EVENT(self) -> str:
        """Window event whose ``detail`` carries the sense key (an assumption, see docs/checkout.md)."""
        return self._str("FLEXCHARGE_SENSEJS_KEY_EVENT", "flexcharge:sensekey")

    @property
    def SENSEJS_KEY_GLOBAL(self) -> str:
        """A global variable to poll for the sense key; empty = off."""
        return self._str("FLEXCHARGE_SENSEJS_KEY_GLOBAL", "")

    @property
    def WEBHOOK_HOST(self) -> str:
        return self._str("FLEXCHARGE_WEBHOOK_HOST", "")

    @property
    def WEBHOOK_TOLERANCE(self) -> int:
        """Largest age (and future skew) of ``x-fc-date``, seconds; 0 or None: no date check.

        FlexCharge documents no replay window (flexcharge-api.md §19.2); with the
        check off a replay is still refused by its nonce.
        """
        value = self._get("FLEXCHARGE_WEBHOOK_TOLERANCE", 300)
        if value is None:
            return 0
        # A string ("300" from the environment) is the wrong type, named as such.
        seconds = types.as_int("FLEXCHARGE_WEBHOOK_TOLERANCE", value)
        if seconds < 0:
            # Not "off": a typo must not silently drop the replay window.
            raise FlexChargeConfigurationError(
                "FLEXCHARGE_WEBHOOK_TOLERANCE must be a whole number of seconds, 0 or more "
                f"(found {value!r}).",
                setting="FLEXCHARGE_WEBHOOK_TOLERANCE",
            )
        return seconds

    @property
    def WEBHOOK_MAX_BODY(self) -> int:
        """Largest webhook body accepted, bytes (real deliveries are ~300 bytes)."""
        return types.as_int(
            "FLEXCHARGE_WEBHOOK_MAX_BODY", self._get("FLEXCHARGE_WEBHOOK_MAX_BODY", 64 * 1024)
        )

    @property
    def MIT_EXPIRY_DAYS(self) -> int:
        return types.as_int(
            "FLEXCHARGE_MIT_EXPIRY_DAYS", self._get("FLEXCHARGE_MIT_EXPIRY_DAYS", 21)
        )

    @property
    def DECLINE_MAX_AGE(self) -> float:
        """Hours after a decline during which ``/evaluate`` may still be called."""
        return types.as_number(
            "FLEXCHARGE_DECLINE_MAX_AGE", self._get("FLEXCHARGE_DECLINE_MAX_AGE", 24)
        )

    @property
    def TIMEOUT(self) -> tuple[float, float]:
        return types.as_timeout("FLEXCHARGE_TIMEOUT", self._get("FLEXCHARGE_TIMEOUT", (3.05, 30)))

    @property
    def TEST_MODE(self) -> bool:
        value = self._get("FLEXCHARGE_TEST_MODE", None)
        if value is None:
            return not self.is_production_api
        return types.as_bool("FLEXCHARGE_TEST_MODE", value)

    @property
    def MAX_ATTEMPTS(self) -> int:
        """Attempts per transmission before it is marked failed (evaluations stop at the window).

        200 attempts at the 15-minute backoff cap (full jitter: 7.5 min on
        average) ride out about a day of FlexCharge outage, the window in which
        FlexCharge wants its copies.
        """
        return types.as_int("FLEXCHARGE_MAX_ATTEMPTS", self._get("FLEXCHARGE_MAX_ATTEMPTS", 200))

    @property
    def RETRY_BASE_DELAY(self) -> float:
        """Seconds before the first retry; doubles per attempt, with jitter."""
        return types.as_number(
            "FLEXCHARGE_RETRY_BASE_DELAY", self._get("FLEXCHARGE_RETRY_BASE_DELAY", 2.0)
        )

    @property
    def RETRY_MAX_DELAY(self) -> float:
        return types.as_number(
            "FLEXCHARGE_RETRY_MAX_DELAY", self._get("FLEXCHARGE_RETRY_MAX_DELAY", 15 * 60)
        )

    @property
    def TASK_BACKEND(self) -> str:
        """Alias in ``TASKS`` the app enqueues on."""
        return self._str("FLEXCHARGE_TASK_BACKEND", "default")

    @property
    def TASK_QUEUE(self) -> str:
        return self._str("FLEXCHARGE_TASK_QUEUE", "default")

    @property
    def DELIVERY_BATCH_SIZE(self) -> int:
        """Rows one delivery task claims at once (of each kind), sent over one session."""
        name = "FLEXCHARGE_DELIVERY_BATCH_SIZE"
        value = types.as_int(name, self._get(name, 100))
        if value < 1:
            raise types.wrong(name, "an int of at least 1", value)
        return value

    # Refund vocabularies: FlexCharge documents SUCCESS/FAILED only, and its live sandbox
    # answered a refused refund with ``success: true`` and ``responseMessage: "DECLINED"``
    # (docs/assumptions.md). Words are compared upper-case, codes as given.

    @property
    def REFUND_APPROVED_WORDS(self) -> frozenset[str]:
        """``status``/``responseMessage`` words that approve a refund (all present must)."""
        return self._words("FLEXCHARGE_REFUND_APPROVED_WORDS", ("SUCCESS", "APPROVED"))

    @property
    def REFUND_DECLINED_WORDS(self) -> frozenset[str]:
        """``status``/``responseMessage`` words that refuse a refund (any one does)."""
        default = ("FAILED", "DECLINED", "FAILURE", "REJECTED", "DENIED", "ERROR")
        return self._words("FLEXCHARGE_REFUND_DECLINED_WORDS", default)

    @property
    def REFUND_APPROVED_CODES(self) -> frozenset[str]:
        """``responseCode`` values of an approved refund; another code leaves it unconfirmed."""
        return self._words("FLEXCHARGE_REFUND_APPROVED_CODES", ("0", "00", "000"), upper=False)

    @property
    def ORDER_REFUNDED_FIELDS(self) -> tuple[str, ...]:
        """``GET /orders/{id}`` fields that may hold the refunded total (first found wins)."""
        default = ("refundedAmount", "totalRefundedAmount", "refundedTotal")
        value = self._get("FLEXCHARGE_ORDER_REFUNDED_FIELDS", default)
        return tuple(str(name) for name in value)

    @property
    def ORDER_AMOUNT_UNITS(self) -> str:
        """Unit of the amounts ``GET /orders/{id}`` carries: "minor" (cents) or "major"."""
        return str(self._get("FLEXCHARGE_ORDER_AMOUNT_UNITS", "minor")).lower()

    def _words(self, name: str, default: tuple[str, ...], *, upper: bool = True) -> frozenset[str]:
        value = self._get(name, default)
        words = (str(word).strip() for word in value)
        return frozenset(word.upper() if upper else word for word in words if word)

    @property
    def HEALTH_TOKEN(self) -> str:
        """Bearer token that opens the health view to a monitor; empty: staff only."""
        return str(self._get("FLEXCHARGE_HEALTH_TOKEN", "") or "")

    @property
    def HEALTH_MAX_QUEUE_AGE(self) -> float:
        """Seconds a row may wait queued before health reports it (default 15 min)."""
        return float(self._get("FLEXCHARGE_HEALTH_MAX_QUEUE_AGE", 900))

    @property
    def HEALTH_MAX_REFUSALS(self) -> int:
        """Webhook signature refusals per hour above which health reports them (default 10)."""
        return int(self._get("FLEXCHARGE_HEALTH_MAX_REFUSALS", 10))

    @property
    def HEALTH_WEBHOOK_SILENCE(self) -> float | None:
        """Seconds without any webhook that health reports; None (default): not checked."""
        value = self._get("FLEXCHARGE_HEALTH_WEBHOOK_SILENCE", None)
        return None if value is None else float(value)

    @property
    def is_production_api(self) -> bool:
        return (urlsplit(self.API_URL).hostname or "").lower() in PRODUCTION_API_HOSTS

    def is_configured(self, *names: str) -> bool:
        """True when every named setting (e.g. ``"FLEXCHARGE_MID"``) has a value."""
        return all(self._get(name, "") for name in names)


conf = FlexChargeSettings()


def __getattr__(name: str) -> Any:
    # ``from django_flexcharge import conf; conf.MID`` reaches the module, not
    # the object: answer for the object too.
    return getattr(conf, name)
