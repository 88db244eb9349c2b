"""FlexCharge failing in every way the emulator can fail: nothing is lost, nothing is sent twice.

Each scenario stores ``N`` declines and ``N`` approvals (200/200) while the
fault is on; the first attempt runs as the Tasks API job after commit, every
later one through ``flexcharge_retry --run``, repeated until nothing is
queued. At the end every ``/evaluate`` idempotency key and every merchant
``orderId`` was accepted exactly once, every transmission is sent, and
``/transmit`` (which FlexCharge does not dedupe) was accepted once per key
except where the emulator itself dropped an answer after accepting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from django_flexcharge.models import FlexChargeOrder, Transmission
from django_flexcharge.transmissions import send_transmission
from tests.reliability.carddata import find_card_data
from tests.reliability.conftest import IS_POSTGRES, N, record
from tests.reliability.harness import (
    FlexCharge,
    age_rows,
    assert_delivered_exactly_once,
    deliver_all,
    queued,
    retry_run,
    seed,
)

pytestmark = [pytest.mark.reliability, pytest.mark.django_db]

#: Fault knobs per scenario (``Emulator.set_faults``); seeds keep the runs repeatable.
SCENARIOS: dict[str, dict[str, Any]] = {
    "5xx": {"error_rate": 0.5, "error_codes": (500, 502, 503), "seed": 1},
    "429": {"error_rate": 0.25, "error_codes": (429,), "retry_after": 1, "seed": 2},
    "dropped connections": {"drop_rate": 0.4, "seed": 3},
    "hang past the timeout": {"hang": 3.0, "times": 3, "paths": ("evaluate", "transmit")},
    "mixed": {
        "error_rate": 0.3,
        "error_codes": (500, 502, 503, 429),
        "retry_after": 1,
        "drop_rate": 0.15,
        "seed": 4,
    },
}


def run_scenario(
    name: str,
    flexcharge,
    vaulted,
    payer,
    billing,
    capture,
    stopwatch,
    *,
    transmit_duplicates: int = 0,
) -> dict[str, Any]:
    with capture(execute=True):
        seed(name[:3].upper(), N, N, card=vaulted, payer=payer, billing=billing)
    first = {"queued after the first attempts": queued()}
    age_rows()
    drive = deliver_all()
    figures = assert_delivered_exactly_once(flexcharge, transmit_duplicates=transmit_duplicates)
    attempts = FlexChargeOrder.objects.aggregate(e=Max("attempts"))["e"]
    record(
        f"faults/{name}",
        declines=N,
        approvals=N,
        **first,
        retry_rounds=drive.rounds,
        max_evaluate_attempts=attempts,
        max_transmit_attempts=Transmission.objects.aggregate(t=Max("attempts"))["t"],
        **figures,
        seconds=stopwatch.seconds,
    )
    return figures


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_call_is_delivered_exactly_once_through_the_fault(
    name,
    flexcharge,
    vaulted,
    payer,
    billing,
    settings,
    django_capture_on_commit_callbacks,
    stopwatch,
):
    if name == "hang past the timeout":
        settings.FLEXCHARGE_TIMEOUT = (1.0, 1.0)
    flexcharge.set_faults(**SCENARIOS[name])

    figures = run_scenario(
        name, flexcharge, vaulted, payer, billing, django_capture_on_commit_callbacks, stopwatch
    )

    assert sum(figures["faults"].values()) > 0, "the fault never fired"


def test_a_lost_evaluate_answer_is_replayed_not_duplicated(
    flexcharge, vaulted, payer, billing, django_capture_on_commit_callbacks, stopwatch
):
    # The emulator creates the order, then drops the answer: the retry must carry
    # the same idempotency key, so FlexCharge replays its answer instead of a second order.
    flexcharge.set_faults(drop_response_rate=0.4, paths=("evaluate",), seed=5)

    figures = run_scenario(
        "lost evaluate answers",
        flexcharge,
        vaulted,
        payer,
        billing,
        django_capture_on_commit_callbacks,
        stopwatch,
    )

    lost = flexcharge.injected("evaluate", "drop_response")
    assert lost > 0
    assert figures["evaluate_replays"] == lost


def test_a_lost_transmit_answer_is_the_only_duplicate_copy(
    flexcharge, vaulted, payer, billing, django_capture_on_commit_callbacks, stopwatch
):
    # /transmit has no dedupe at FlexCharge: a copy whose answer was lost after it was
    # accepted is sent again (at-least-once). Exactly those, and nothing else, repeat.
    flexcharge.set_faults(drop_response_rate=0.2, paths=("transmit",), seed=6)
    lost_after_accept = None

    with django_capture_on_commit_callbacks(execute=True):
        seed("LTA", 0, N, card=vaulted, payer=payer, billing=billing)
    age_rows()
    deliver_all()
    lost_after_accept = flexcharge.injected("transmit", "drop_response")

    figures = assert_delivered_exactly_once(flexcharge, transmit_duplicates=lost_after_accept)
    assert lost_after_accept > 0
    record("faults/lost transmit answers", approvals=N, **figures, seconds=stopwatch.seconds)


def test_an_outage_refusing_connections_loses_nothing(
    flexcharge, vaulted, payer, billing, django_capture_on_commit_callbacks, stopwatch
):
    flexcharge.stop()  # nothing listens on the port: every connection is refused

    with django_capture_on_commit_callbacks(execute=True):
        seed("OUT", N, N, card=vaulted, payer=payer, billing=billing)
    age_rows()
    during = deliver_all(max_rounds=2)

    assert queued() == 2 * N
    assert set(FlexChargeOrder.objects.values_list("status", flat=True)) == {"queued"}
    errors = set(FlexChargeOrder.objects.values_list("last_error", flat=True))
    errors |= set(Transmission.objects.values_list("last_error", flat=True))
    assert errors, "no attempt was recorded"
    assert all("could not be reached (ConnectionError)" in e for e in errors), errors
    assert all("nothing answered at FLEXCHARGE_API_URL http://127.0.0.1:" in e for e in errors)
    attempts_during = FlexChargeOrder.objects.aggregate(m=Max("attempts"))["m"]

    flexcharge.start()  # FlexCharge is back, same port, new process: old tokens are unknown
    after = deliver_all()

    figures = assert_delivered_exactly_once(flexcharge)
    record(
        "faults/outage (connection refused, then a new emulator on the same port)",
        declines=N,
        approvals=N,
        rounds_during_outage=during.rounds,
        attempts_per_row_during_outage=attempts_during,
        rounds_after=after.rounds,
        **figures,
        seconds=stopwatch.seconds,
    )


def test_429_retry_after_is_honoured(flexcharge, vaulted, payer, billing, settings):
    seed("RA", 0, 1, card=vaulted, payer=payer, billing=billing)
    row = Transmission.objects.get()
    flexcharge.set_faults(error_rate=1.0, error_codes=(429,), retry_after=3, times=1)
    before = timezone.now()

    assert send_transmission(row.pk) == "retry"

    row.refresh_from_db()
    assert row.next_attempt_at - before >= dt.timedelta(seconds=3)
    assert "HTTP 429" in row.last_error
    age_rows()
    assert retry_run() == 0  # not due before FlexCharge's Retry-After
    assert flexcharge.counts("transmit") == {}
    deliver_all(deadline=10)
    row.refresh_from_db()
    assert row.status == "sent"
    assert row.sent_at >= before + dt.timedelta(seconds=3)
    assert flexcharge.counts("transmit") == {str(row.idempotency_key): 1}


# --- a real worker killed with SIGKILL mid-batch ---------------------------------------------

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def worker_database(tmp_path: Path) -> Iterator[str]:
    """A database of its own for the worker processes: a SQLite file, or a new PostgreSQL one."""
    if not IS_POSTGRES:
        yield f"sqlite:///{tmp_path / 'worker.sqlite3'}"
        return
    import psycopg

    params = connection.settings_dict
    name = f"{params['NAME']}_kill_{os.getpid()}"[:63]
    admin = {
        "host": params["HOST"] or "127.0.0.1",
        "port": params["PORT"] or 5432,
        "user": params["USER"],
        "password": params["PASSWORD"] or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        password = f":{params['PASSWORD']}" if params["PASSWORD"] else ""
        yield f"postgres://{params['USER']}{password}@{admin['host']}:{admin['port']}/{name}"
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Workers:
    """Subprocesses sharing the worker settings: db_worker, flexcharge_retry, workerctl."""

    def __init__(self, tmp_path: Path, database_url: str, api_url: str) -> None:
        self.tmp_path = tmp_path
        self.log = tmp_path / "worker.log"
        self.env = {
            **os.environ,
            # This checkout's app and emulator (the harness starts emulators).
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "emulator")]),
            "DJANGO_SETTINGS_MODULE": "tests.reliability.worker_settings",
            "FC_WORKER_DATABASE_URL": database_url,
            "FC_WORKER_API_URL": api_url,
            "FC_WORKER_LOG": str(self.log),
        }
        self.running: list[subprocess.Popen] = []
        self.started = 0

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def ctl(self, *args: object) -> dict:
        out = self.run("-m", "tests.reliability.workerctl", *map(str, args))
        return json.loads(out.strip().splitlines()[-1])

    def start_worker(self) -> subprocess.Popen:
        self.started += 1
        out = (self.tmp_path / f"db_worker-{self.started}.out").open("w")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "db_worker",
                "--interval",
                "0.05",
                "--no-startup-delay",
                "--no-reload",
                "--worker-id",
                f"w{self.started}",
            ],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.running.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen) -> None:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        self.running.remove(worker)

    def stop_all(self) -> None:
        for worker in self.running:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.running:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(5)
        self.running.clear()


def wait_until(predicate, *, deadline: float, what: str, every: float = 0.05):
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {deadline:.0f} s waiting for {what}")
        time.sleep(every)


class Assassin:
    """Kills the worker while FlexCharge holds one of its calls.

    Armed with a path and a threshold of accepted calls, it holds the next
    request to that path that will be processed (no fault injected), lets the
    test SIGKILL the worker, then lets the emulator process the request, so
    FlexCharge accepts a call whose sender is dead: the worst moment to die.
    """

    def __init__(self, flex: FlexCharge) -> None:
        self.flex = flex
        self.plan: list[tuple[str, int]] = []
        self.caught = threading.Event()
        self.killed = threading.Event()
        flex.on_request = self.on_request

    def accepted(self) -> int:
        return sum(self.flex.counts("evaluate").values()) + sum(
            self.flex.counts("transmit").values()
        )

    def arm(self, path: str, after: int) -> None:
        self.caught.clear()
        self.killed.clear()
        self.plan = [(path, after)]

    def on_request(self, path: str, decision: Any) -> None:
        if not self.plan or decision.action != "pass" or decision.drop_response:
            return
        wanted, after = self.plan[0]
        if path == wanted and self.accepted() >= after:
            self.plan = []
            self.caught.set()
            self.killed.wait(10)  # hold the call until its sender is dead

    def kill_during_call(self, workers: Workers, victim: subprocess.Popen) -> None:
        if not self.caught.wait(90):
            raise AssertionError(f"no {self.plan} call came within 90 s")
        workers.kill(victim)
        self.killed.set()


def test_a_worker_killed_mid_call_loses_nothing(flexcharge, tmp_path, stopwatch):
    n = N
    assassin = Assassin(flexcharge)
    kills: list[dict[str, Any]] = []
    with worker_database(tmp_path) as database_url:
        workers = Workers(tmp_path, database_url, flexcharge.current.base_url)
        try:
            workers.run("-m", "django", "migrate", "--noinput", "-v", "0")
            assert workers.ctl("seed", "KIL", n, n) == {"orders": n, "transmissions": n}
            # Some failures, so deferred retries (run_after tasks) are in the queue too.
            flexcharge.set_faults(error_rate=0.15, error_codes=(500, 503), seed=9)
            # Kill it in an /evaluate call (its answer is then replayed), restart it, kill it
            # in a /transmit call (FlexCharge keeps that copy), restart it.
            for path, after in (("evaluate", n // 3), ("transmit", n + n // 3)):
                assassin.arm(path, after)
                victim = workers.start_worker()
                assassin.kill_during_call(workers, victim)
                report = workers.ctl("report")
                rows = report["orders"] + report["transmissions"]
                kills.append(
                    {
                        "path": path,
                        "leased": {r["idempotency_key"] for r in rows if r["leased"]},
                        "queued": sum(r["status"] == "queued" for r in rows),
                        "expired": workers.ctl("expire-leases"),
                    }
                )
            workers.start_worker()
            if IS_POSTGRES:
                workers.start_worker()  # two workers share the rest

            def finished() -> dict | None:
                report = workers.ctl("retry")  # cron: re-enqueue rows whose task died
                rows = report["orders"] + report["transmissions"]
                return report if all(r["status"] != "queued" for r in rows) else None

            final = wait_until(finished, deadline=120, what="every row delivered", every=1.0)
        finally:
            workers.stop_all()
        scan = workers.ctl("scan")

    for kill in kills:
        assert kill["queued"] > 0, f"nothing was left to do when the worker died: {kill}"
        # The killed call's row is leased, with the rest of its batch (claimed, not yet sent).
        assert 1 <= len(kill["leased"]) <= 100, f"the killed call's batch is leased: {kill}"
    evaluate_batch, transmit_batch = (kill["leased"] for kill in kills)
    orders, transmissions = final["orders"], final["transmissions"]
    assert {o["status"] for o in orders} <= {"pending", "approved"}
    assert {t["status"] for t in transmissions} == {"sent"}
    assert flexcharge.counts("evaluate") == Counter({o["idempotency_key"]: 1 for o in orders})
    assert flexcharge.counts("evaluate_order_id") == Counter({o["order_id"]: 1 for o in orders})
    replayed = {key for key, n in flexcharge.counts("evaluate_replay").items() if n}
    assert replayed & evaluate_batch, "the killed /evaluate is replayed"
    # FlexCharge accepted the /transmit whose sender died; the restarted worker cannot
    # know and sends it again (FlexCharge does not dedupe transmits). Nothing else repeats.
    transmit = flexcharge.counts("transmit")
    assert set(transmit) == {t["idempotency_key"] for t in transmissions}
    twice = {key: count for key, count in transmit.items() if count > 1}
    assert list(twice.values()) == [2]
    assert set(twice) <= transmit_batch
    # Card data: neither the worker database nor the worker processes' log holds any.
    assert scan["findings"] == []
    log = workers.log.read_text()
    assert "Vaulted card ****3184" in log
    assert find_card_data(log) == []
    record(
        "faults/worker killed with SIGKILL mid-call, twice (real db_worker)",
        database="PostgreSQL" if IS_POSTGRES else "SQLite file",
        declines=n,
        approvals=n,
        workers_after_restart=2 if IS_POSTGRES else 1,
        queued_at_kills=[kill["queued"] for kill in kills],
        leases_expired=[kill["expired"] for kill in kills],
        evaluate_duplicates=sum(n - 1 for n in flexcharge.counts("evaluate").values()),
        evaluate_replays=sum(flexcharge.counts("evaluate_replay").values()),
        transmit_duplicates=sum(transmit.values()) - len(transmissions),
        tasks=final["tasks"],
        faults=flexcharge.faults_injected(),
        values_scanned=scan["scanned"],
        seconds=stopwatch.seconds,
    )
