"""``manage.py flexcharge_emulator``: a local FlexCharge for this site.

Credentials default to the site's own ``FLEXCHARGE_*`` settings when the site
points at the emulator (``FLEXCHARGE_API_URL = "http://127.0.0.1:8765/v1/"``,
any loopback URL), so it authenticates, vaults and verifies webhooks with no
further flags. A site whose API URL is anything else (FlexCharge) holds real
credentials: the emulator then never copies them nor signs with its
subscriber key, and uses its own public ones instead (and says so). Webhooks go
to ``--webhook-url``, by default this site's webhook view on
``http://127.0.0.1:8000``. Runs until Ctrl-C.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import NoReverseMatch, reverse

from django_flexcharge.conf import SUBSCRIBER_KEYS, subscriber_key_entries
from django_flexcharge.emulator import EmulatorConfig
from django_flexcharge.emulator.__main__ import add_arguments, config_from, serve
from django_flexcharge.public_credentials import is_loopback_url
from django_flexcharge.signing import key_problem

DEFAULT_SITE = "http://127.0.0.1:8000"
DEFAULT_WEBHOOK_PATH = "/flexcharge/webhook/"


def settings_are_for_the_emulator() -> bool:
    """True when the site talks to a local emulator, so its credentials are not real ones."""
    return is_loopback_url(str(getattr(settings, "FLEXCHARGE_API_URL", "") or ""))


def defaults_from_settings() -> EmulatorConfig:
    """An ``EmulatorConfig`` whose credentials are the site's settings where set, if the
    site points at the emulator; the emulator's own public ones otherwise."""
    base = EmulatorConfig()
    try:
        path = reverse("django_flexcharge:webhook")
    except (NoReverseMatch, ImportError):
        path = DEFAULT_WEBHOOK_PATH  # where CONTRACT.md §1 mounts the app
    if not settings_are_for_the_emulator():
        # Real credentials: never copied, never used to sign.
        return EmulatorConfig(webhook_url=DEFAULT_SITE + path)
    entries, _ = subscriber_key_entries(getattr(settings, SUBSCRIBER_KEYS, None))
    keys = [str(key).strip() for key in entries if not key_problem(key)]
    return EmulatorConfig(
        app_key=getattr(settings, "FLEXCHARGE_APP_KEY", "") or base.app_key,
        app_secret=getattr(settings, "FLEXCHARGE_APP_SECRET", "") or base.app_secret,
        mid=getattr(settings, "FLEXCHARGE_MID", "") or base.mid,
        site_id=getattr(settings, "FLEXCHARGE_SITE_ID", "") or base.site_id,
        tokenization_key=getattr(settings, "FLEXCHARGE_TOKENIZATION_KEY", "")
        or base.tokenization_key,
        # With several keys configured (rotation), the emulator signs with the first.
        subscriber_key=next((k for k in keys if k), base.subscriber_key),
        webhook_url=DEFAULT_SITE + path,
    )


class Command(BaseCommand):
    help = "Run a local FlexCharge emulator (API, vault, orders, signed webhooks) until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        add_arguments(parser, defaults_from_settings())

    def handle(self, *args: Any, **options: Any) -> None:
        logger = logging.getLogger("django_flexcharge.emulator")
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(self.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        config = config_from(type("Options", (), options))
        if not settings_are_for_the_emulator():
            self.stderr.write(
                "FLEXCHARGE_API_URL is not a loopback URL, so this site's credentials look real: "
                "the emulator does not copy them and signs webhooks with its own public key "
                "(point FLEXCHARGE_API_URL at the emulator to use the site's)."
            )
        serve(config, announce=lambda line: self.stdout.write(line))
