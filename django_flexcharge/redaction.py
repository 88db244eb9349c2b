"""Keep card data and secrets out of exceptions, log lines, stored rows and stack frames.

Two defences, because error trackers differ: Django's error report honours
``sensitive_variables`` (applied in ``client`` and ``services``), but a tracker
that collects frame locals itself (Sentry's default) does not, so every value
that holds a PAN, CVV, key or token while a request is in flight is wrapped in
``Secret``, whose ``repr`` shows nothing (``types.Card`` hides its number the
same way). ``redact`` scrubs what FlexCharge echoes back: the exact values we
sent, a PAN with spaces or dashes, any Luhn-valid card number and any JWT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Generic, NoReturn, TypeVar

T = TypeVar("T")
REDACTED = "[redacted]"
#: Where an echoed number may start and end: not inside a word or an identifier
#: (a GUID token such as ``d9d41234-5678-...`` holds digit runs that must stay intact).
_START = r"(?<![0-9A-Za-z])(?<![0-9A-Za-z]-)"
_END = r"(?![0-9A-Za-z])(?!-[0-9A-Za-z])"
#: 12-19 digits, optionally grouped by single spaces or dashes (``4000 0027 6000 3184``).
_CARD_LIKE = re.compile(_START + r"\d(?:[ -]?\d){11,18}" + _END)
#: An access token (a JWT) echoed in an answer, e.g. ``Bearer eyJ...``.
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


class Secret(Generic[T]):
    """A value whose ``repr``/``str`` never show it; ``reveal()`` where it is really needed."""

    __slots__ = ("_value",)
    _value: T

    def __init__(self, value: T) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is read-only")

    def __reduce__(self) -> NoReturn:
        # Pickled (a task queue, a cache) it would be stored in clear.
        raise TypeError("a Secret is not picklable")


def reveal(value: Any) -> Any:
    """``value`` itself, unwrapped if it is a ``Secret``."""
    return value.reveal() if isinstance(value, Secret) else value


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _card_like(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return REDACTED if luhn_ok(digits) else match.group()


def _pattern(secret: str) -> re.Pattern[str]:
    if secret.isdigit():
        # A PAN or CVV, also when echoed with separators; not inside a longer number.
        grouped = r"[ -]?".join(secret)
        if len(secret) >= 12:
            # The PAN we sent: wherever it appears (a GUID cannot hold it by chance).
            return re.compile(r"(?<!\d)" + grouped + r"(?!\d)")
        # A CVV: three digits do occur inside identifiers, so only standing alone.
        return re.compile(_START + grouped + _END)
    return re.compile(re.escape(secret))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without ``secrets`` (in any grouping), card numbers or JWTs."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = _pattern(secret).sub(REDACTED, text)
    text = _CARD_LIKE.sub(_card_like, text)
    return _JWT.sub(REDACTED, text)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` (decoded JSON) with ``redact_text`` applied to every string, keys too."""
    secrets = tuple(s for s in secrets if s)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {redact(key, secrets): redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, secrets) for item in value]
    return value
