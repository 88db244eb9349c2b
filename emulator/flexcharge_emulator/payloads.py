"""JSON shapes FlexCharge answers with, and case-insensitive reading of requests.

FlexCharge runs on ASP.NET Core (flexcharge-api.md §1), whose model binding
ignores property-name casing; published clients send ``AppKey`` and
``appKey``, ``Token`` and ``token``. ``get`` therefore matches keys
ignoring case and underscores, which also maps the snake_case tokenize body
onto the camelCase one. Error bodies come in two shapes (§16): the flattened
validation dictionary with a ``TraceId`` (HTTP 400) and the result envelope
with tuple-style ``errors`` (business failures).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

_MISSING = object()


def _norm(key: str) -> str:
    return key.replace("_", "").lower()


def get(data: Any, *path: str, default: Any = None) -> Any:
    """``get(body, "transaction", "amount")`` ignoring key case and underscores."""
    current = data
    for name in path:
        if not isinstance(current, dict):
            return default
        wanted = _norm(name)
        found = _MISSING
        for key, value in current.items():
            if isinstance(key, str) and _norm(key) == wanted:
                found = value
                break
        if found is _MISSING:
            return default
        current = found
    return current


def is_blank(value: Any) -> bool:
    """ASP.NET ``[Required]``: null, or a string of only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def trace_id() -> str:
    """A W3C traceparent, as FlexCharge puts in ``TraceId``."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def validation_error(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """The flattened 400 body: ``{"TraceId": [...], "Transaction.Id": ["..."]}``."""
    return {"TraceId": [trace_id()], **errors}


def required(path: str) -> str:
    """ASP.NET's message names the property, not the path: ``The Id field is required.``."""
    return f"The {path.rsplit('.', 1)[-1]} field is required."


def invalid(path: str) -> str:
    return f"The field {path.rsplit('.', 1)[-1]} is invalid."


def envelope(**fields: Any) -> dict[str, Any]:
    """The ASP.NET "result" envelope (§2) with ``fields`` merged in front."""
    body: dict[str, Any] = dict(fields)
    for key, default in (
        ("success", True),
        ("result", None),
        ("status", None),
        ("statusCode", None),
        ("errors", []),
        ("customProperties", {}),
    ):
        body.setdefault(key, default)
    return body


def tuple_error(message: str, code: str) -> dict[str, Any]:
    """One business error, serialized like the C# value tuple FlexCharge returns (§9)."""
    return {"item1": message, "item2": code, "item3": code, "item4": True}


def failure(message: str, code: str, status: str = "FAILED", **fields: Any) -> dict[str, Any]:
    """A business failure; ``responseMessage`` too, as refund failures carry one (§9)."""
    fields.setdefault("responseMessage", message)
    return envelope(
        **fields,
        success=False,
        status=status,
        errors=[tuple_error(message, code)],
    )


def canonical(data: Any) -> str:
    """Order-independent JSON text, to tell "same payload" from "different payload"."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def parse_int(value: Any) -> int | None:
    """An int, also from a numeric string (ASP.NET web defaults allow reading numbers from strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
