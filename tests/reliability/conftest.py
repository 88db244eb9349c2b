"""Reliability suite: the session-wide card-data watch, figures, and the fault harness fixtures.

For the whole session (every test pytest runs, not only these), a handler on
the root logger, an execute wrapper on every database connection and a hook
on ``FlexChargeError`` feed each log record, each INSERT/UPDATE value and each
error text to ``WATCH``, which looks for the test PANs and CVVs. After every
database test in this directory the whole database is scanned as well, before
pytest-django rolls it back or flushes it. ``test_card_data.py`` reads the
result in a test moved to the very end of the session.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

# Plain asserts in the helpers report their values, as in test modules.
pytest.register_assert_rewrite("tests.reliability.harness", "tests.reliability.carddata")

from django.db import DatabaseError, connection, connections  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402

from django_flexcharge.exceptions import FlexChargeError  # noqa: E402
from django_flexcharge.models import VaultedCard  # noqa: E402
from django_flexcharge.services import vault_card  # noqa: E402
from tests.reliability.carddata import Watch, WatchHandler, scan_database  # noqa: E402
from tests.reliability.harness import FAULT_SETTINGS, FlexCharge  # noqa: E402

#: The session's card-data watch (see the module docstring).
WATCH = Watch()
#: Measured figures, printed at the end of the session ("reliability figures").
FIGURES: dict[str, Any] = {}
#: The test that reads WATCH: run after every other test of the session.
SESSION_SCAN = "test_card_data.py::test_the_session_left_no_card_data_anywhere"

IS_POSTGRES = connection.vendor == "postgresql"
#: Declines and approvals per fault scenario (200/200 as the issue asks; override to explore).
N = int(os.environ.get("FC_RELIABILITY_N", "200"))


def record(name: str, **figures: Any) -> None:
    FIGURES[name] = figures


# --- the session-wide watch ---------------------------------------------------------------


def _attach_db_watch(sender: Any = None, connection: Any = None, **kwargs: Any) -> None:
    # Inserted first, so a test's own ``execute_wrapper()`` (which pops the last one) keeps working.
    if connection is not None and WATCH.execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, WATCH.execute_wrapper)


def _record_flexcharge_errors() -> Any:
    """Feed every FlexChargeError to WATCH as it is built; returns the undo."""
    had_own = "__init__" in FlexChargeError.__dict__
    previous = FlexChargeError.__dict__.get("__init__")

    def __init__(self: FlexChargeError, *args: Any, **kwargs: Any) -> None:
        super(FlexChargeError, self).__init__(*args, **kwargs)
        WATCH.exception(self)

    FlexChargeError.__init__ = __init__  # type: ignore[method-assign]

    def undo() -> None:
        if had_own:
            FlexChargeError.__init__ = previous  # type: ignore[method-assign]
        else:
            del FlexChargeError.__init__

    return undo


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[Any]:
    handler = WatchHandler(WATCH)
    root = logging.getLogger()
    root.addHandler(handler)
    connection_created.connect(_attach_db_watch)
    for conn in connections.all(initialized_only=True):
        _attach_db_watch(connection=conn)
    undo = _record_flexcharge_errors()
    try:
        return (yield)
    finally:
        undo()
        connection_created.disconnect(_attach_db_watch)
        root.removeHandler(handler)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.nodeid.endswith(SESSION_SCAN)]
    if last:
        items[:] = [item for item in items if item not in last] + last


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures ({connection.vendor})")
    for name, figures in FIGURES.items():
        text = ", ".join(f"{key}={value}" for key, value in figures.items())
        terminalreporter.write_line(f"{name}: {text}")


@pytest.fixture(autouse=True)
def _scan_the_database_after_each_test(
    request: pytest.FixtureRequest, django_db_blocker: Any
) -> Iterator[None]:
    """Scan every table before pytest-django rolls back or flushes this test's data."""
    yield
    if request.node.get_closest_marker("django_db") is None:
        return
    try:
        with django_db_blocker.unblock():
            findings, scanned = scan_database()
    except DatabaseError:
        return  # the test left its transaction broken: it failed already
    WATCH.db_scans += 1
    WATCH.values_scanned += scanned
    WATCH.findings.extend(f"database after {request.node.nodeid}: {hit}" for hit in findings)


# --- fault harness fixtures ----------------------------------------------------------------


@pytest.fixture
def flexcharge(settings: Any) -> Iterator[FlexCharge]:
    """The emulator as FlexCharge, with the fault-test settings (short timeouts, tiny backoff)."""
    for name, value in FAULT_SETTINGS.items():
        setattr(settings, name, value)
    flex = FlexCharge(settings)
    try:
        yield flex
    finally:
        flex.close()


@pytest.fixture
def vaulted(flexcharge: FlexCharge, card: Any, payer: Any) -> VaultedCard:
    """A card vaulted at the emulator (no faults yet): its token carries the "rescued" rule."""
    return vault_card(card, email=payer.email)


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 2)


@pytest.fixture
def stopwatch() -> Stopwatch:
    return Stopwatch()
