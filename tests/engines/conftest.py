"""Engine tests: a fresh real redis-server per test, the fault harness's emulator fixtures.

Every module here is marked ``engines`` (``make test-engines``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.engines.redis_server import RedisServer
from tests.reliability.conftest import flexcharge, stopwatch  # noqa: F401  (fixtures)


@pytest.fixture
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


#: Measured figures, printed at the end of the session ("engine figures").
FIGURES: dict[str, dict[str, Any]] = {}


def record(name: str, **figures: Any) -> None:
    FIGURES[name] = figures


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("engine figures")
    for name, figures in FIGURES.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
