"""What each ``FLEXCHARGE_*`` setting must be, checked where ``conf`` reads it.

A setting of the wrong type (most often a string read from the environment
without a cast: ``"False"`` is truthy, ``"twenty"`` is no number) raises
``SettingTypeError`` naming the setting, the type expected and the type found;
the system check ``django_flexcharge.E020`` reports the same at start-up, in
every mode. A secret's value never appears in a message, only its type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from numbers import Real
from typing import Any

from .exceptions import FlexChargeConfigurationError

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
#: Which django-environ reader turns an environment string into the expected type.
_ENV_READER = {"a bool": "env.bool", "an int": "env.int", "a number": "env.float"}


class SettingTypeError(FlexChargeConfigurationError):
    """A setting holds a value of the wrong type or form; ``hint`` says how to fix it."""

    def __init__(self, message: str, *, setting: str, hint: str = "") -> None:
        super().__init__(message + (f" {hint}" if hint else ""), setting=setting)
        self.hint = hint
        self.check_message = message


def type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _found(value: Any, secret: bool) -> str:
    if secret or not isinstance(value, str | int | float | bool | None):
        return type_name(value)
    shown = repr(value)
    return f"{type_name(value)} {shown if len(shown) <= 40 else shown[:37] + '...'}"


def wrong(name: str, expected: str, value: Any, *, secret: bool = False) -> SettingTypeError:
    """The error for ``name`` holding ``value`` where ``expected`` was wanted."""
    hint = ""
    reader = _ENV_READER.get(expected.split(" (")[0])
    if isinstance(value, str) and reader:
        hint = f"A string from the environment? Read it with {reader}({name!r})."
    elif expected.startswith("a (connect, read)") and isinstance(value, str):
        hint = f"From the environment: env.tuple({name!r}, cast=float)."
    elif expected.startswith("a string") and isinstance(value, list | tuple):
        hint = "Give one value, not a list."
    return SettingTypeError(
        f"{name} must be {expected}; found {_found(value, secret)}.", setting=name, hint=hint
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def as_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise wrong(name, "a bool (True or False)", value)
    return value


def as_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise wrong(name, "an int", value)
    return value


def as_number(name: str, value: Any) -> float:
    if not _is_number(value):
        raise wrong(name, "a number (int or float)", value)
    return float(value)


def as_str(name: str, value: Any, *, secret: bool = False) -> str:
    if not isinstance(value, str):
        raise wrong(name, "a string", value, secret=secret)
    return value


def as_timeout(name: str, value: Any) -> tuple[float, float]:
    """A number (both timeouts) or a ``(connect, read)`` pair of numbers."""
    if _is_number(value):
        return (float(value), float(value))
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_number(part) for part in value)
    ):
        return (float(value[0]), float(value[1]))
    raise wrong(name, "a (connect, read) tuple of two numbers, or one number", value)


def as_guid(name: str, value: str) -> str:
    """``value`` when it is a GUID as FlexCharge writes them (8-4-4-4-12 hex digits)."""
    if not _GUID.fullmatch(value.strip()):
        raise SettingTypeError(
            f"{name} must be a GUID like 4f3c2a10-6b7e-4d59-9a1f-0e5d2c7b8a61; "
            f"found a str of {len(value)} characters that is not one.",
            setting=name,
            hint="Copy it from the FlexCharge portal (merchant id: Account; site id: "
            "Developers > Sites). With the emulator any GUID works.",
        )
    return value.strip()
