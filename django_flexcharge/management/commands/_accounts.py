"""The ``--account ALIAS`` option the commands share (repeatable; default: every account)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import models

from ...accounts import check_alias
from ...exceptions import FlexChargeConfigurationError


def add_account_option(parser: CommandParser) -> None:
    parser.add_argument(
        "--account",
        action="append",
        dest="accounts",
        default=[],
        metavar="ALIAS",
        help="only this FlexCharge account (repeat for several; default: all accounts)",
    )


def chosen_accounts(options: dict[str, Any]) -> list[str]:
    """The aliases given, each checked; an empty list means every account."""
    aliases: list[str] = options.get("accounts") or []
    for alias in aliases:
        try:
            check_alias(alias)
        except FlexChargeConfigurationError as err:
            raise CommandError(str(err)) from err
    return aliases


def of_accounts(queryset: models.QuerySet[Any], aliases: list[str]) -> models.QuerySet[Any]:
    return queryset.filter(account__in=aliases) if aliases else queryset
