"""Delivery on RQ and on Celery, with real worker processes and a real redis-server.

For each engine: deferred retries (``run_after``) run by the engine alone; a
worker SIGKILLed while FlexCharge holds its call, twice, loses nothing and
repeats nothing but the one ``/transmit`` FlexCharge accepted from the dead
worker; and a Redis outage while declines and approvals keep coming loses
nothing, is logged once, and is delivered once Redis is back. Counting is at
the emulator, per idempotency key and per merchant order id.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

import pytest

from tests.engines.conftest import record
from tests.engines.workers import EngineWorkers
from tests.reliability.carddata import find_card_data
from tests.reliability.conftest import IS_POSTGRES
from tests.reliability.test_faults import Assassin, wait_until, worker_database

pytestmark = [pytest.mark.engines, pytest.mark.django_db]

ENGINES = ["rq", "celery"]
#: Declines and approvals per scenario (kept small: CI runs every engine).
N = int(os.environ.get("FC_ENGINES_N", "60"))


def all_sent(report: dict) -> bool:
    rows = report["orders"] + report["transmissions"]
    return bool(rows) and all(r["status"] != "queued" for r in rows)


def assert_exactly_once(flexcharge: Any, report: dict, *, transmit_twice: set[str]) -> None:
    orders, transmissions = report["orders"], report["transmissions"]
    assert {o["status"] for o in orders} <= {"pending", "approved"}
    assert {t["status"] for t in transmissions} == {"sent"}
    assert flexcharge.counts("evaluate") == Counter({o["idempotency_key"]: 1 for o in orders})
    assert flexcharge.counts("evaluate_order_id") == Counter({o["order_id"]: 1 for o in orders})
    transmit = flexcharge.counts("transmit")
    assert set(transmit) == {t["idempotency_key"] for t in transmissions}
    assert {key for key, count in transmit.items() if count > 1} == transmit_twice
    assert max(transmit.values()) <= 2


@pytest.fixture
def workers(request, flexcharge, redis, tmp_path):
    engine = request.param
    with worker_database(tmp_path) as database_url:
        workers = EngineWorkers(
            tmp_path, database_url, flexcharge.current.base_url, engine, redis.url
        )
        workers.run("-m", "django", "migrate", "--noinput", "-v", "0")
        try:
            yield workers
        finally:
            workers.stop_all()


@pytest.mark.parametrize("workers", ["rq", "rq-simple", "celery"], indirect=True)
def test_deferred_retries_run_on_the_engine_alone(workers, flexcharge, stopwatch):
    """No flexcharge_retry: every retry is a run_after job (RQ's scheduler) or an eta wake-up."""
    flexcharge.set_faults(error_rate=0.3, error_codes=(500, 503), seed=5)
    workers.env["FC_BEAT"] = "3600"  # Celery: only the wake-ups, no periodic drain
    workers.start_worker()
    workers.ctl("traffic", "DEF", N // 2, N // 2)
    final = wait_until(
        lambda: (report := workers.ctl("report")) and all_sent(report) and report,
        deadline=120,
        what=f"every row delivered by {workers.engine} alone\n{workers.outputs()}",
        every=0.5,
    )
    retried = flexcharge.injected("evaluate", "error") + flexcharge.injected("transmit", "error")
    assert retried > 0, flexcharge.faults_injected()
    assert_exactly_once(flexcharge, final, transmit_twice=set())
    record(
        f"engines/{workers.engine}: deferred retries without flexcharge_retry",
        rows=N,
        retried_after_5xx=retried,
        seconds=stopwatch.seconds,
    )


@pytest.mark.parametrize("workers", ENGINES, indirect=True)
def test_a_worker_killed_mid_call_loses_nothing(workers, flexcharge, stopwatch):
    assassin = Assassin(flexcharge)
    kills: list[dict[str, Any]] = []
    assert workers.ctl("seed", "KIL", N, N) == {"orders": N, "transmissions": N}
    flexcharge.set_faults(error_rate=0.15, error_codes=(500, 503), seed=9)
    for path in ("evaluate", "transmit"):
        # A third of the way through the work left, in a call to ``path``.
        assassin.arm(path, assassin.accepted() + N // 3)
        victim = workers.start_worker()
        assassin.kill_during_call(workers, victim)
        report = workers.ctl("report")
        rows = report["orders"] + report["transmissions"]
        kills.append(
            {
                "leased": {r["idempotency_key"] for r in rows if r["leased"]},
                "queued": sum(r["status"] == "queued" for r in rows),
                "expired": workers.ctl("expire-leases"),
            }
        )
    workers.start_worker()
    workers.start_worker(beat=False)  # two workers share the rest

    def finished() -> dict | None:
        report = workers.ctl("retry")  # cron: re-enqueue rows whose job died with the worker
        return report if all_sent(report) else None

    final = wait_until(
        finished, deadline=150, what=f"every row delivered\n{workers.outputs()}", every=1.0
    )
    for kill in kills:
        assert kill["queued"] > 0, kill
        # The killed call's row is leased, with the rest of its batch (claimed, not yet sent).
        assert 1 <= len(kill["leased"]) <= 100, f"the killed call's batch is leased: {kill}"
    evaluate_batch, transmit_batch = (kill["leased"] for kill in kills)
    replayed = {key for key, n in flexcharge.counts("evaluate_replay").items() if n}
    assert replayed & evaluate_batch, "the killed /evaluate is replayed"
    # FlexCharge accepted the dead worker's /transmit and does not dedupe transmits.
    twice = {key for key, n in flexcharge.counts("transmit").items() if n > 1}
    assert len(twice) == 1, twice
    assert twice <= transmit_batch, twice
    assert_exactly_once(flexcharge, final, transmit_twice=twice)
    log = workers.log.read_text()
    assert find_card_data(log) == []
    assert find_card_data(workers.outputs()) == []
    record(
        f"engines/{workers.engine}: worker SIGKILLed mid-call twice",
        database="PostgreSQL" if IS_POSTGRES else "SQLite file",
        rows=2 * N,
        queued_at_kills=[kill["queued"] for kill in kills],
        evaluate_replays=sum(flexcharge.counts("evaluate_replay").values()),
        seconds=stopwatch.seconds,
    )


ENQUEUE_FAILED = re.compile(r"Could not enqueue|queue is still failing")


@pytest.mark.parametrize("workers", ENGINES, indirect=True)
def test_a_redis_outage_loses_nothing_and_is_logged_once(workers, flexcharge, redis, stopwatch):
    """Traffic before, during and after an outage; the queue is never the source of truth."""
    per_burst = max(N // 4, 5)
    workers.start_worker()
    before = workers.ctl("traffic", "BEF", per_burst, per_burst)
    wait_until(lambda: all_sent(workers.ctl("report")), deadline=60, what="the first burst")
    workers.stop_all()

    redis.stop()
    during = workers.ctl("traffic", "OUT", per_burst, per_burst)
    report = workers.ctl("report")
    stored = [
        r for r in report["orders"] + report["transmissions"] if r["order_id"].startswith("OUT-")
    ]
    assert len(stored) == 2 * per_burst, "every row is stored while Redis is down"
    assert {r["status"] for r in stored} == {"queued"}
    failures = [
        line for line in workers.log.read_text().splitlines() if ENQUEUE_FAILED.search(line)
    ]
    assert len(failures) == 1, failures  # once per burst, not once per row
    assert "flexcharge_retry will send them" in failures[0]

    redis.start()
    after = workers.ctl("traffic", "AFT", per_burst, per_burst)
    workers.start_worker()
    assert "Enqueueing works again" not in workers.log.read_text()  # another process's burst

    def finished() -> dict | None:
        if workers.engine == "rq":
            workers.ctl("retry")  # cron's flexcharge_retry
        # Celery: the beat drain alone delivers the outage's rows.
        report = workers.ctl("report")
        return report if all_sent(report) else None

    final = wait_until(
        finished, deadline=120, what=f"the outage's rows delivered\n{workers.outputs()}", every=1.0
    )
    assert_exactly_once(flexcharge, final, transmit_twice=set())
    assert len(final["orders"]) == 3 * per_burst
    record(
        f"engines/{workers.engine}: Redis outage",
        rows_during_outage=2 * per_burst,
        enqueue_failure_lines=len(failures),
        seconds_storing_during_outage=during["seconds"],
        seconds_storing_before=before["seconds"],
        seconds_storing_after=after["seconds"],
        seconds=stopwatch.seconds,
    )
