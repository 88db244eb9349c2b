"""``manage.py flexcharge_emulator``: a local FlexCharge for this site.

Credentials default to the site's own ``FLEXCHARGE_*`` settings when the site
points at the emulator (``FLEXCHARGE_API_URL = "http://127.0.0.1:8765/v1/"``,
any loopback URL), so it authenticates, vaults and verifies webhooks with no
further flags, whatever values the site holds (unset ones: the emulator's
own). A site whose API URL is anything else (FlexCharge) holds real
credentials: the emulator then never copies them nor signs with its
subscriber key, and uses its own public ones instead (and says so). Webhooks
go to ``--site-url`` (default ``http://127.0.0.1:8000``) plus this site's
webhook path, or to ``--webhook-url``. ``--all-accounts`` also serves each
account of ``FLEXCHARGE_ACCOUNTS`` that points at the emulator as a merchant
of its own at the same URL. Runs until Ctrl-C.

The emulator is a distribution of its own (``django-flexcharge-emulator``, the
``emulator`` extra) that production installs leave out, so it is imported only
when the command runs or prints its help; without it, ``--help`` says what to
install and running the command raises a ``CommandError`` saying the same.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import NoReverseMatch, reverse

from django_flexcharge.accounts import DEFAULT, account_config, aliases
from django_flexcharge.conf import SUBSCRIBER_KEYS, conf, subscriber_key_entries
from django_flexcharge.exceptions import FlexChargeConfigurationError
from django_flexcharge.public_credentials import is_loopback_url
from django_flexcharge.signing import key_problem

if TYPE_CHECKING:
    from flexcharge_emulator import EmulatorConfig

DEFAULT_SITE = "http://127.0.0.1:8000"
#: Where the README mounts the app (``flexcharge_emulator.__main__.DEFAULT_WEBHOOK_PATH``).
DEFAULT_WEBHOOK_PATH = "/flexcharge/webhook/"
INSTALL_HINT = (
    "The FlexCharge emulator is not installed: it is a distribution of its own, left out of "
    'production installs. Install it with: pip install "django-flexcharge[emulator]" '
    "(in a checkout of django-flexcharge: pip install -e ./emulator)."
)


def emulator_cli() -> ModuleType | None:
    """``flexcharge_emulator.__main__`` (its options, config and server), or None when the
    emulator is not installed. A broken emulator install still raises."""
    try:
        importlib.import_module("flexcharge_emulator")
    except ModuleNotFoundError as err:
        if err.name != "flexcharge_emulator":
            raise
        return None
    return importlib.import_module("flexcharge_emulator.__main__")


def _setting(name: str, default: str) -> str:
    value = getattr(settings, name, None)
    return value if isinstance(value, str) and value else default


def settings_are_for_the_emulator() -> bool:
    """True when the site talks to a local emulator, so its credentials are not real ones."""
    value = getattr(settings, "FLEXCHARGE_API_URL", "")
    return is_loopback_url(value if isinstance(value, str) else "")


def defaults_from_settings() -> EmulatorConfig:
    """An ``EmulatorConfig`` whose credentials are the site's settings where set, if the
    site points at the emulator; the emulator's own public ones otherwise."""
    cli = emulator_cli()
    if cli is None:
        raise CommandError(INSTALL_HINT)
    base: EmulatorConfig = cli.EmulatorConfig()
    if not settings_are_for_the_emulator():
        return base  # real credentials: never copied, never used to sign
    entries, _ = subscriber_key_entries(getattr(settings, SUBSCRIBER_KEYS, None))
    keys = [str(key).strip() for key in entries if not key_problem(key)]
    return replace(
        base,
        app_key=_setting("FLEXCHARGE_APP_KEY", base.app_key),
        app_secret=_setting("FLEXCHARGE_APP_SECRET", base.app_secret),
        mid=_setting("FLEXCHARGE_MID", base.mid),
        site_id=_setting("FLEXCHARGE_SITE_ID", base.site_id),
        tokenization_key=_setting("FLEXCHARGE_TOKENIZATION_KEY", base.tokenization_key),
        # With several keys configured (rotation), the emulator signs with the first.
        subscriber_key=next((k for k in keys if k), base.subscriber_key),
    )


def webhook_path(account: str = DEFAULT) -> str:
    try:
        if account == DEFAULT:
            return reverse("django_flexcharge:webhook")
        return reverse("django_flexcharge:webhook", kwargs={"account": account})
    except (NoReverseMatch, ImportError):
        # Where the README mounts the app.
        path = DEFAULT_WEBHOOK_PATH
        return path if account == DEFAULT else f"{path.rstrip('/')}/{account}/"


def account_merchants(
    default: EmulatorConfig, site_url: str | None
) -> tuple[list[EmulatorConfig], list[str]]:
    """A merchant for each account of ``FLEXCHARGE_ACCOUNTS`` besides "default", with that
    account's credentials and webhooks to its own URL; and why any account was left out.

    An account whose API URL is not loopback holds real credentials: never copied.
    """
    merchants: list[EmulatorConfig] = []
    skipped: list[str] = []
    for alias in aliases():
        if alias == DEFAULT:
            continue
        account = conf.account(alias)
        if not is_loopback_url(account.API_URL):
            skipped.append(f"{alias}: its API_URL is not the emulator (real credentials)")
            continue
        entries, _ = subscriber_key_entries(account_config(alias).get("WEBHOOK_SUBSCRIBER_KEYS"))
        keys = [str(key).strip() for key in entries if not key_problem(key)]
        merchants.append(
            replace(
                default,
                app_key=account.APP_KEY or default.app_key,
                app_secret=account.APP_SECRET or default.app_secret,
                mid=account.MID,
                site_id=account.SITE_ID or default.site_id,
                tokenization_key=account.TOKENIZATION_KEY or default.tokenization_key,
                subscriber_key=next(iter(keys), default.subscriber_key),
                webhook_url=(site_url.rstrip("/") + webhook_path(alias)) if site_url else None,
            )
        )
    return merchants, skipped


class Command(BaseCommand):
    help = (
        "Run a local FlexCharge emulator (API, vault, orders, signed webhooks, a SenseJS "
        "stand-in) for development without a FlexCharge account, until Ctrl-C. With "
        "FLEXCHARGE_API_URL on the emulator, credentials default to this site's FLEXCHARGE_* "
        "settings, so any values you set work."
    )

    def add_arguments(self, parser: Any) -> None:
        cli = emulator_cli()
        if cli is None:  # --help still works and says what to install
            parser.description = f"{self.help} {INSTALL_HINT}"
        else:
            cli.add_arguments(
                parser,
                defaults_from_settings(),
                site_url=DEFAULT_SITE,
                webhook_path=webhook_path(),
                credentials_from="this site's FLEXCHARGE_* setting when FLEXCHARGE_API_URL is "
                "the emulator, else the emulator's own",
            )
        parser.add_argument(
            "--all-accounts",
            action="store_true",
            help="also serve every account of FLEXCHARGE_ACCOUNTS whose API_URL is the emulator, "
            "as its own merchant at the same URL (its own keys; webhooks to --site-url + "
            "that account's webhook path)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cli = emulator_cli()
        if cli is None:
            raise CommandError(INSTALL_HINT)
        logger = logging.getLogger("flexcharge_emulator")
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(self.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        config = cli.config_from(type("Options", (), options))
        if not settings_are_for_the_emulator():
            self.stderr.write(
                "FLEXCHARGE_API_URL is not a loopback URL, so this site's credentials look real: "
                "the emulator does not copy them and signs webhooks with its own public key "
                "(point FLEXCHARGE_API_URL at the emulator to use the site's)."
            )
        problem = cli.webhook_url_problem(config.webhook_url)
        if problem:
            self.stderr.write(self.style.WARNING(f"Warning: {problem}"))
        more: list[EmulatorConfig] = []
        if options.get("all_accounts"):
            try:
                more, skipped = account_merchants(config, options.get("site_url"))
            except FlexChargeConfigurationError as err:
                raise CommandError(str(err)) from None
            for reason in skipped:
                self.stderr.write(self.style.WARNING(f"Not served: {reason}"))
            mids = [config.mid, *(merchant.mid for merchant in more)]
            if len(set(mids)) != len(mids):
                raise CommandError("Each account served needs its own FLEXCHARGE MID.")
        cli.serve(config, announce=lambda line: self.stdout.write(line), more=more)
