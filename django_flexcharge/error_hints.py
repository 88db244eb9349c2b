"""Which setting an error from FlexCharge points at, and where the call went.

``FlexChargeClient`` builds its errors with these, so a message (and a
worker's ``last_error``) says what to fix: a tokenization key FlexCharge
refuses answers "The Environment is invalid.", which means
``FLEXCHARGE_TOKENIZATION_KEY``. Only answers whose cause is certain are
mapped. The base URL shown never carries a user:password or query string, and
no key, secret or token is ever part of a hint.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

#: FlexCharge's field name (lower case) in a 400 -> the setting that supplied it.
FIELD_SETTINGS = {
    "environment": "FLEXCHARGE_TOKENIZATION_KEY",
    "mid": "FLEXCHARGE_MID",
    "siteid": "FLEXCHARGE_SITE_ID",
}


def base_url(api_url: str) -> str:
    """``api_url`` without user info, query or fragment: safe to show."""
    parts = urlsplit(api_url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def unreachable_hint(api_url: str) -> str:
    """What to check when nothing answered at ``api_url``."""
    shown = base_url(api_url)
    if (urlsplit(api_url).hostname or "") in _LOOPBACK:
        return (
            f"nothing answered at FLEXCHARGE_API_URL {shown}: is "
            "`python manage.py flexcharge_emulator` running on that port?"
        )
    return f"nothing answered at FLEXCHARGE_API_URL {shown}: check the URL and the network"


def setting_hint(path: str, status: int, errors: dict[str, list[str]], api_url: str) -> str:
    """The setting behind FlexCharge's answer to ``path`` when that is certain, else ``""``."""
    shown = base_url(api_url)
    if path == "oauth2/token" and status in (400, 401):
        return (
            f"FlexCharge at {shown} refused FLEXCHARGE_APP_KEY / FLEXCHARGE_APP_SECRET: copy "
            "them again from the portal (Developers > Api Keys); sandbox keys work only with "
            "the sandbox URL, production keys only with production"
        )
    if status == 404 and not path.startswith("orders/"):
        return (
            f"{shown} has no /{path}: check FLEXCHARGE_API_URL (FlexCharge's ends in /v1/, "
            "e.g. https://api-sandbox.flex-charge.com/v1/)"
        )
    if status == 404:
        return f"FlexCharge at {shown} does not know this order"
    if status == 400:
        fields = sorted(
            {FIELD_SETTINGS[key.lower()] for key in errors if key.lower() in FIELD_SETTINGS}
        )
        if fields:
            return f"FlexCharge at {shown} refused {' and '.join(fields)}: check the setting"
    return ""


def log_fields(**fields: object) -> str:
    """`` code=X trace=Y`` for the fields that have a value (no empty ``code=``)."""
    return "".join(f" {name}={value}" for name, value in fields.items() if value not in ("", None))
