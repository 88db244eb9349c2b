"""Finding test card data: in text, in every table of a database, in logs and exceptions.

The detectors look for the suite's test PANs (``tests.conftest.TEST_PANS``),
also when written with spaces or dashes between digits, and for a test CVV
right after a card-security-code name (``"cvv": "999"``,
``verification_value=737``). A bare "123" is everywhere (ids, amounts), so a
CVV only counts next to such a name.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from tests.conftest import TEST_CVVS, TEST_PANS

#: A PAN as written by people and forms: digits, maybe separated by one space or dash.
PAN_RE = re.compile("|".join("[ -]?".join(pan) for pan in TEST_PANS))
#: A test CVV right after a security-code name, separated by quotes, colons, spaces.
CVV_RE = re.compile(
    r"(?i)(?:cvv2?|cvc2?|cid|verification[_ ]?value|security[_ ]?code|card[_ ]?code)"
    r"[\W_]{0,24}?(?:" + "|".join(TEST_CVVS) + r")(?!\d)"
)


def find_card_data(text: str) -> list[str]:
    """What card data ``text`` holds: ``["PAN 4111...", "CVV cvv: 999"]``, or []."""
    found = [f"PAN {m.group(0)}" for m in PAN_RE.finditer(text)]
    found += [f"CVV {m.group(0)}" for m in CVV_RE.finditer(text)]
    return found


def as_text(value: Any) -> str:
    """Any stored value as searchable text (JSON for dicts and lists, UTF-8 for bytes)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    inner = getattr(value, "obj", None)  # psycopg's Jsonb(...) adapter around a JSON value
    if inner is not None:
        return as_text(inner)
    return str(value)


def scan_database(alias: str = "default") -> tuple[list[str], int]:
    """Every column of every table in the database (all installed apps, migrations too).

    Returns ``(findings, values_scanned)``. Reads whole tables: fine for test
    databases, where the point is to miss nothing.
    """
    connection = connections[alias]
    findings: list[str] = []
    scanned = 0
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            columns = [col[0] for col in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if value is None or isinstance(value, int | float | bool):
                        continue
                    scanned += 1
                    for hit in find_card_data(as_text(value)):
                        findings.append(f"{table}.{column}: {hit}")
    return findings, scanned


@dataclass
class Watch:
    """Everything the session saw: log records, database writes, FlexChargeError texts."""

    findings: list[str] = field(default_factory=list)
    log_records: int = 0
    db_writes: int = 0
    exceptions: int = 0
    db_scans: int = 0
    values_scanned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, where: str, text: str) -> None:
        hits = find_card_data(text)
        if hits:
            with self._lock:
                self.findings.extend(f"{where}: {hit}" for hit in hits)

    # -- log records --------------------------------------------------------------------

    def log_record(self, record: logging.LogRecord, formatted: str) -> None:
        with self._lock:
            self.log_records += 1
        self.check(f"log {record.name} {record.levelname}", formatted)

    # -- database writes ----------------------------------------------------------------

    def execute_wrapper(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        """A ``connection.execute_wrapper``: checks the values of every INSERT and UPDATE."""
        # WITH: a data-modifying CTE (the webhook's UPDATE ... RETURNING feeding an INSERT).
        head = sql.lstrip()[:6].upper()
        if params and (head in ("INSERT", "UPDATE") or head.startswith("WITH")):
            rows: Iterable[Any] = params if many else [params]
            with self._lock:
                self.db_writes += 1
            for row in rows:
                values = row.values() if isinstance(row, dict) else row
                for value in values:
                    if value is not None and not isinstance(value, int | float | bool):
                        self.check(f"db write {sql.split('(')[0][:60]!r}", as_text(value))
        return execute(sql, params, many, context)

    # -- exceptions ---------------------------------------------------------------------

    def exception(self, exc: BaseException) -> None:
        with self._lock:
            self.exceptions += 1
        parts = [str(exc), repr(exc.args)]
        for name in ("response", "errors", "message"):
            if hasattr(exc, name):
                parts.append(as_text(getattr(exc, name)))
        self.check(f"exception {type(exc).__name__}", "\n".join(parts))


class WatchHandler(logging.Handler):
    """A root-logger handler feeding every record (message, args, traceback) to a Watch."""

    def __init__(self, watch: Watch) -> None:
        super().__init__(level=logging.DEBUG)
        self.watch = watch
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record whose arguments do not fit its format
            text = f"{record.msg!r} {record.args!r}"
        self.watch.log_record(record, text)
