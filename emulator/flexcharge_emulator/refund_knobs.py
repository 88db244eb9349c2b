"""Knobs for the refund answers real FlexCharge was seen (or may be expected) to give.

All off by default, so the emulator answers a refund as the documentation
describes. Each one reproduces a case a client must survive:

``declined_in_success``
    The live sandbox's 2024 answer to a refused refund: ``success: true``,
    ``status: "SUCCESS"`` and ``responseMessage: "DECLINED"``. Nothing is
    refunded. (The ``responseCode`` is invented; the live one was not recorded.)
``lose_answer``
    ``"504"`` or ``"drop"``: the refund is applied, then the answer is lost
    (a 504 from a gateway, or the connection closed), as when the web process
    dies or a proxy times out after FlexCharge refunded.
``webhook_amounts``
    False: ``order.refunded`` carries ``EventData: null``, as FlexCharge's
    undocumented payload may.
``webhook_on_partial``
    True: a partial refund sends ``order.refunded`` too (by default only a
    refund that empties the order does).
``times``
    How many refunds ``declined_in_success`` and ``lose_answer`` affect
    (None: every one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .payloads import envelope

#: A handler's status asking the server to close the connection without answering.
DROP_CONNECTION = 0
LOSE_MODES = ("", "504", "drop")


@dataclass
class RefundKnobs:
    declined_in_success: bool = False
    lose_answer: str = ""
    webhook_amounts: bool = True
    webhook_on_partial: bool = False
    times: int | None = None
    used: int = 0

    def __post_init__(self) -> None:
        if self.lose_answer not in LOSE_MODES:
            raise ValueError(f"lose_answer must be one of {LOSE_MODES}, not {self.lose_answer!r}")
        for name in ("declined_in_success", "webhook_amounts", "webhook_on_partial"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if self.times is not None and (isinstance(self.times, bool) or self.times < 0):
            raise ValueError("times must be a non-negative integer or null")

    def take(self) -> tuple[bool, str]:
        """``(decline, lose)`` for the next refund, counting it against ``times``."""
        active = self.times is None or self.used < self.times
        if active and (self.declined_in_success or self.lose_answer):
            self.used += 1
            return self.declined_in_success, self.lose_answer
        return False, ""

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


def declined_in_success() -> dict[str, Any]:
    """The refused refund inside a success envelope (the live sandbox, 2024)."""
    return envelope(
        status="SUCCESS",
        responseCode="05",
        responseMessage="DECLINED",
        transactionId=None,
    )


def lost(mode: str) -> tuple[int, Any]:
    """What the client sees instead of the answer to an applied refund."""
    if mode == "drop":
        return DROP_CONNECTION, None
    return 504, {"message": "Gateway Timeout"}
