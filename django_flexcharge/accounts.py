"""Several FlexCharge accounts in one deployment: which settings an alias has.

The flat ``FLEXCHARGE_*`` settings are the account ``"default"``. More accounts
come from ``FLEXCHARGE_ACCOUNTS`` (alias -> dict of setting names without the
``FLEXCHARGE_`` prefix) or, for platforms whose merchants live in the database,
from ``FLEXCHARGE_ACCOUNT_LOADER``: the dotted path of a callable
``loader(alias) -> dict | None``. A key an account leaves out falls back to the
flat setting, then to its default.

A loader's answer is kept in this process for ``FLEXCHARGE_ACCOUNT_LOADER_TTL``
seconds (so a busy site does not query per call) and dropped at once by
``clear_account_cache(alias)`` (call it when a merchant's keys change) and when
either setting changes (``override_settings``). Every account, declared or
loaded, passes the same checks (``account_problems``) before it is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .conf import FlexChargeSettings, conf
from .exceptions import FlexChargeConfigurationError

DEFAULT = "default"
#: Settings an account may set for itself. The others (task backend, retries,
#: timeouts, body limit, refund vocabularies) belong to the process: one value for all.
ACCOUNT_KEYS = frozenset(
    {
        "APP_KEY",
        "APP_SECRET",
        "MID",
        "SITE_ID",
        "TOKENIZATION_KEY",
        "WEBHOOK_SUBSCRIBER_KEYS",
        "API_URL",
        "SENSEJS_URL",
        "SENSEJS_INVOKE",
        "SENSEJS_KEY_EVENT",
        "SENSEJS_KEY_GLOBAL",
        "WEBHOOK_HOST",
        "WEBHOOK_TOLERANCE",
        "TEST_MODE",
        "MIT_EXPIRY_DAYS",
        "DECLINE_MAX_AGE",
    }
)
#: Letters of an alias: it is a URL path segment and a database value.
ALIAS_MAX = 64

_loaded: dict[str, tuple[float, dict[str, Any] | None]] = {}
_objects: dict[str, AccountSettings] = {}
_guard = threading.Lock()


class AccountSettings(FlexChargeSettings):
    """The typed settings of one non-default account: its own keys, then the flat ones."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def _get(self, name: str, default: Any = None) -> Any:
        own = account_config(self.alias)
        key = name.removeprefix("FLEXCHARGE_")
        if key in own:
            return own[key]
        return super()._get(name, default)

    def __getattribute__(self, name: str) -> Any:
        try:
            return super().__getattribute__(name)
        except FlexChargeConfigurationError as err:
            if not name.isupper() or str(err).startswith("FlexCharge account"):
                raise
            alias = object.__getattribute__(self, "alias")
            # The same error (its class, setting and hint), its message naming the account.
            err.args = (f"FlexCharge account {alias!r}: {err}", *err.args[1:])
            raise


def declared() -> dict[str, Any]:
    """``FLEXCHARGE_ACCOUNTS`` as set (an empty dict when unset)."""
    value = getattr(settings, "FLEXCHARGE_ACCOUNTS", None) or {}
    if not isinstance(value, dict):
        raise FlexChargeConfigurationError(
            f"FLEXCHARGE_ACCOUNTS must be a dict of alias -> settings, not {type(value).__name__}.",
            setting="FLEXCHARGE_ACCOUNTS",
        )
    return value


def aliases() -> list[str]:
    """``"default"`` and every alias of ``FLEXCHARGE_ACCOUNTS`` (a loader's cannot be listed)."""
    return [DEFAULT, *(alias for alias in declared() if alias != DEFAULT)]


def several_accounts() -> bool:
    """Whether the site declares accounts beyond "default" (or loads them)."""
    return bool(declared()) or bool(getattr(settings, "FLEXCHARGE_ACCOUNT_LOADER", None))


def account_problems(alias: str, config: object) -> list[str]:
    """What is wrong with an account's configuration dict (empty when usable)."""
    if not isinstance(alias, str) or not alias or len(alias) > ALIAS_MAX or "/" in alias:
        return [
            f"alias {alias!r} must be a non-empty string of at most {ALIAS_MAX} characters without '/'"
        ]
    if not isinstance(config, dict):
        return [f"its settings must be a dict, not {type(config).__name__}"]
    problems = []
    for key in config:
        if key not in ACCOUNT_KEYS:
            hint = " (drop the FLEXCHARGE_ prefix)" if str(key).startswith("FLEXCHARGE_") else ""
            problems.append(f"{key!r} is not a setting an account may set{hint}")
    keys = config.get("WEBHOOK_SUBSCRIBER_KEYS")
    if keys is not None and not isinstance(keys, list | tuple | str):
        problems.append("WEBHOOK_SUBSCRIBER_KEYS must be a list of base64 keys")
    return problems


def _loader() -> Callable[[str], Any] | None:
    path = getattr(settings, "FLEXCHARGE_ACCOUNT_LOADER", None)
    if not path:
        return None
    if callable(path):
        return path  # type: ignore[no-any-return]
    try:
        return import_string(str(path))  # type: ignore[no-any-return]
    except ImportError as err:
        raise FlexChargeConfigurationError(
            f"FLEXCHARGE_ACCOUNT_LOADER {path!r} cannot be imported: {err}",
            setting="FLEXCHARGE_ACCOUNT_LOADER",
        ) from err


def _loader_ttl() -> float:
    value = getattr(settings, "FLEXCHARGE_ACCOUNT_LOADER_TTL", 300)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FlexChargeConfigurationError(
            f"FLEXCHARGE_ACCOUNT_LOADER_TTL must be a number of seconds, not {type(value).__name__}.",
            setting="FLEXCHARGE_ACCOUNT_LOADER_TTL",
        )
    return float(value)


def _unknown(alias: str) -> FlexChargeConfigurationError:
    return FlexChargeConfigurationError(
        f"Unknown FlexCharge account {alias!r}: declare it in FLEXCHARGE_ACCOUNTS"
        " (or have FLEXCHARGE_ACCOUNT_LOADER return its settings).",
        setting="FLEXCHARGE_ACCOUNTS",
    )


def _load(alias: str) -> dict[str, Any] | None:
    loader = _loader()
    if loader is None:
        return None
    now = time.monotonic()
    cached = _loaded.get(alias)
    if cached is not None and cached[0] > now:
        return cached[1]
    answer = loader(alias)
    config: dict[str, Any] | None = None
    if answer is not None:
        problems = account_problems(alias, answer)
        if problems:
            raise FlexChargeConfigurationError(
                f"FlexCharge account {alias!r} from FLEXCHARGE_ACCOUNT_LOADER: {'; '.join(problems)}.",
                setting="FLEXCHARGE_ACCOUNT_LOADER",
            )
        config = dict(answer)
    with _guard:
        _loaded[alias] = (now + _loader_ttl(), config)
    return config


def account_config(alias: str) -> dict[str, Any]:
    """The keys account ``alias`` sets itself ({} for the default account)."""
    if alias == DEFAULT:
        return {}
    if not isinstance(alias, str):
        raise FlexChargeConfigurationError(
            f"A FlexCharge account alias must be a string, not {type(alias).__name__}.",
            setting="FLEXCHARGE_ACCOUNTS",
        )
    config = declared().get(alias)
    if config is not None:
        problems = account_problems(alias, config)
        if problems:
            raise FlexChargeConfigurationError(
                f"FLEXCHARGE_ACCOUNTS[{alias!r}]: {'; '.join(problems)}.",
                setting="FLEXCHARGE_ACCOUNTS",
            )
        return config  # type: ignore[no-any-return]
    loaded = _load(alias)
    if loaded is None:
        raise _unknown(alias)
    return loaded


def account_conf(alias: str) -> FlexChargeSettings:
    """The typed settings of ``alias`` (``conf`` itself for ``"default"``), one object per alias."""
    if alias == DEFAULT:
        return conf
    account_config(alias)  # unknown or broken: raise now, naming the alias
    found = _objects.get(alias)
    if found is None:
        with _guard:
            found = _objects.setdefault(alias, AccountSettings(alias))
    return found


def check_alias(alias: object, field: str = "account") -> str:
    """``alias`` if it names a known account; FlexChargeConfigurationError naming it otherwise."""
    if not isinstance(alias, str):
        raise FlexChargeConfigurationError(
            f"{field} must be an account alias (a string), not {type(alias).__name__}.",
            setting="FLEXCHARGE_ACCOUNTS",
        )
    account_conf(alias)
    return alias


def clear_account_cache(alias: str | None = None) -> None:
    """Forget what the loader said about ``alias`` (or about every account)."""
    with _guard:
        if alias is None:
            _loaded.clear()
        else:
            _loaded.pop(alias, None)


@receiver(setting_changed, dispatch_uid="django_flexcharge.accounts.setting_changed")
def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting in (
        "FLEXCHARGE_ACCOUNTS",
        "FLEXCHARGE_ACCOUNT_LOADER",
        "FLEXCHARGE_ACCOUNT_LOADER_TTL",
    ):
        clear_account_cache()
