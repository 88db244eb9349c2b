"""Fault injection for reliability tests and benchmarks.

Knobs apply to API endpoints (``/v1/...``) only, never to ``/_emulator/...``,
so a test can always reach the control plane to switch faults off. A request
that hits a fault is answered (or not) *before* it is processed: it changes no
state, which keeps "how many times did the client really send this?" countable
through ``State.count_by_idempotency_key``. The one deliberate exception is
``drop_response_rate``: the request is processed and then the answer is lost,
the case idempotency keys exist for.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

#: What ``Faults.decide`` tells the handler to do before processing.
PASS, ERROR, DROP, HANG = "pass", "error", "drop", "hang"


@dataclass
class FaultSettings:
    error_rate: float = 0.0
    error_codes: tuple[int, ...] = (500, 502, 503)
    latency: float = 0.0
    drop_rate: float = 0.0
    retry_after: float | None = None
    hang: float = 0.0
    paths: tuple[str, ...] | None = None
    #: Process the request, then close the socket without answering.
    drop_response_rate: float = 0.0
    #: Stop injecting after this many faults (None: keep going). "Fail twice, then work."
    times: int | None = None
    seed: int | None = None
    injected: int = field(default=0)

    def matches(self, path: str) -> bool:
        if not self.paths:
            return True
        short = path.removeprefix("/v1/")
        for pattern in self.paths:
            pattern = pattern.strip()
            if path.startswith(pattern) or short.startswith(pattern.removeprefix("/v1/")):
                return True
        return False


@dataclass
class Decision:
    action: str = PASS
    status: int = 0
    retry_after: float | None = None
    latency: float = 0.0
    hang: float = 0.0
    drop_response: bool = False


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings = FaultSettings()
        self._random = random.Random()

    def set(
        self,
        *,
        error_rate: float = 0.0,
        error_codes: Iterable[int] = (500, 502, 503),
        latency: float = 0.0,
        drop_rate: float = 0.0,
        retry_after: float | None = None,
        hang: float = 0.0,
        paths: Iterable[str] | str | None = None,
        drop_response_rate: float = 0.0,
        times: int | None = None,
        seed: int | None = None,
    ) -> None:
        """Replace every knob at once (unnamed knobs go back to "no fault")."""
        codes = tuple(int(c) for c in error_codes) or (500,)
        if isinstance(paths, str):
            paths = [paths]
        settings = FaultSettings(
            error_rate=float(error_rate),
            error_codes=codes,
            latency=float(latency),
            drop_rate=float(drop_rate),
            retry_after=None if retry_after is None else float(retry_after),
            hang=float(hang),
            paths=tuple(paths) if paths else None,
            drop_response_rate=float(drop_response_rate),
            times=None if times is None else int(times),
            seed=seed,
        )
        with self._lock:
            self._settings = settings
            self._random = random.Random(seed)

    def reset(self) -> None:
        self.set()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self._settings)

    def decide(self, path: str) -> Decision:
        with self._lock:
            s = self._settings
            if not s.matches(path):
                return Decision()
            decision = Decision(latency=s.latency)
            exhausted = s.times is not None and s.injected >= s.times
            if not exhausted:
                if s.hang > 0:
                    decision.action, decision.hang = HANG, s.hang
                elif s.drop_rate and self._random.random() < s.drop_rate:
                    decision.action = DROP
                elif s.error_rate and self._random.random() < s.error_rate:
                    decision.action = ERROR
                    decision.status = self._random.choice(s.error_codes)
                    if decision.status == 429:
                        # A 429 without Retry-After would be unusual; default to 1 s.
                        decision.retry_after = 1.0 if s.retry_after is None else s.retry_after
                    elif decision.status == 503:
                        decision.retry_after = s.retry_after
                elif s.drop_response_rate and self._random.random() < s.drop_response_rate:
                    decision.drop_response = True
                if decision.action != PASS or decision.drop_response:
                    s.injected += 1
            return decision
