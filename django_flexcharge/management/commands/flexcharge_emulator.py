"""``manage.py flexcharge_emulator``: a local FlexCharge for this site.

Credentials default to the site's own ``FLEXCHARGE_*`` settings, so a site
pointed at the emulator (``FLEXCHARGE_API_URL = "http://127.0.0.1:8765/v1/"``)
authenticates, vaults and verifies webhooks with no further flags. Webhooks go
to ``--webhook-url``, by default this site's webhook view on
``http://127.0.0.1:8000``. Runs until Ctrl-C.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import NoReverseMatch, reverse

from django_flexcharge.emulator import EmulatorConfig
from django_flexcharge.emulator.__main__ import add_arguments, config_from, serve

DEFAULT_SITE = "http://127.0.0.1:8000"
DEFAULT_WEBHOOK_PATH = "/flexcharge/webhook/"


def defaults_from_settings() -> EmulatorConfig:
    """An ``EmulatorConfig`` whose credentials are the site's settings where set."""
    base = EmulatorConfig()
    keys = getattr(settings, "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS", None) or []
    if isinstance(keys, str):
        keys = [keys]
    try:
        path = reverse("django_flexcharge:webhook")
    except (NoReverseMatch, ImportError):
        path = DEFAULT_WEBHOOK_PATH  # where CONTRACT.md §1 mounts the app
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
        serve(config, announce=lambda line: self.stdout.write(line))
