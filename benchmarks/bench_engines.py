"""Scale-out: delivery throughput of 1, 2 and 4 worker processes per engine, against the bare loop.

Engines: the database queue (``manage.py db_worker``), RQ (``django-tasks-rq``,
``manage.py rqworker``, RQ's default forking worker and ``SimpleWorker``) and the Celery recipe (``contrib.celery``: wake-ups
to ``celery worker --pool solo`` processes that run ``drain``), the latter two
on a real redis-server. One emulator serves every arm; its counters are read
and its state cleared between arms.

Per arm: ``n`` declines are stored (no worker running; each enqueues its
task on the arm's engine as a site would), then ``k`` worker processes start
and the rate is measured at the emulator from the moment 5 % of the arm has
arrived to the last arrival, so process start-up is left out. The reference
is the bare loop (``bare_loop.py``: one ``requests.Session`` POSTing the same
stored bodies) run as 1, 2 and 4 processes over disjoint slices: what this
machine allows for k senders with no database or queue at all. Duplicates
are counted at the emulator per idempotency key and per merchant order id.

Usage (run.py sets the environment, including ``BENCH_REDIS_URL``):
``python bench_engines.py --out FILE [--quick]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from bench_burst import EMULATOR, VAULT_TOKEN, Arrivals, stop_workers

ENGINES = ("db", "rq", "rq-simple", "celery")
WORKERS = (1, 2, 4)


def worker_command(engine: str, number: int) -> list[str]:
    if engine == "db":
        return [
            *("manage.py", "db_worker", "--interval", "0.05"),
            *("--no-reload", "--no-startup-delay"),
        ]
    if engine.startswith("rq"):
        command = ["manage.py", "rqworker", "--job-class", "django_tasks_rq.Job", "default"]
        if engine == "rq-simple":  # no fork per job: the job runs in the worker process
            command += ["--worker-class", "rq.worker.SimpleWorker"]
        return command
    return [
        *("-m", "celery", "-A", "benchsite.celery_app", "worker", "--pool", "solo"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        *("-n", f"bench{number}@%h", "--loglevel", "WARNING"),
    ]


def start_workers(engine: str, count: int, api_url: str, log: Path) -> list:
    env = common.child_env(BENCH_API_URL=api_url, BENCH_ENGINE=engine.split("-")[0])
    out = open(log, "ab")  # noqa: SIM115 - closed with the processes
    return [
        subprocess.Popen(
            [common.PYTHON, *worker_command(engine, i)],
            cwd=common.BENCH_DIR,
            env=env,
            stdout=out,
            stderr=out,
        )
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--declines", type=int, default=0, help="per arm (default 600; quick 200)")
    args = parser.parse_args()
    n = args.declines or (200 if args.quick else 600)

    common.setup_django()
    import redis
    from benchsite.models import FloorRow
    from django.conf import settings
    from django.core.cache import cache
    from django.test import override_settings
    from django_tasks_db.models import DBTaskResult

    from django_flexcharge.client import dumps
    from django_flexcharge.models import (
        FlexChargeOrder,
        Refund,
        Transmission,
        VaultedCard,
        WebhookEvent,
    )
    from django_flexcharge.services import evaluate_declined_payment
    from django_flexcharge.types import Payment
    from flexcharge_emulator import Emulator, EmulatorConfig

    engines = [e for e in ENGINES if e == "db" or settings.BENCH_REDIS_URL]
    flush = redis.Redis.from_url(settings.BENCH_REDIS_URL) if settings.BENCH_REDIS_URL else None
    payer, billing = common.buyer()
    emu = Emulator(EmulatorConfig(**EMULATOR)).start()
    seen = Arrivals(emu)
    log = common.BENCH_DIR / "results" / "engine-workers.log"
    log.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="flexcharge-engines-"))

    def fresh() -> Any:
        common.reset_tables(
            DBTaskResult, Transmission, WebhookEvent, Refund, FlexChargeOrder, VaultedCard, FloorRow
        )
        if flush is not None:
            flush.flushall()
        cache.clear()
        emu.reset()
        return VaultedCard.objects.create(
            token=VAULT_TOKEN,
            last4="1111",
            bin="411111",
            brand="VISA",
            exp_month=12,
            exp_year=2030,
            holder_name="Ada Lovelace",
            email=common.BUYER_EMAIL,
        )

    def store(engine: str, prefix: str, card: Any) -> list[dict]:
        alias = {"db": "default", "rq": "rq", "rq-simple": "rq", "celery": "celery"}[engine]
        with override_settings(FLEXCHARGE_TASK_BACKEND=alias):
            for i in range(n):
                payment = Payment(
                    order_id=f"{prefix}-{i}",
                    transaction_id=f"txn-{prefix}-{i}",
                    amount=1999,
                    currency="USD",
                    response_code="05",
                    processor="bench-gateway",
                )
                evaluate_declined_payment(payment, card=card, payer=payer, billing=billing)
        return list(FlexChargeOrder.objects.values_list("request_payload", flat=True))

    def duplicates() -> dict[str, int]:
        keys = emu.state.count_by_idempotency_key("evaluate")
        order_ids = emu.state.count_by_idempotency_key("evaluate_order_id")
        return {
            "sent": len(keys),
            "keys_above_1": sum(1 for v in keys.values() if v > 1),
            "order_ids_above_1": sum(1 for v in order_ids.values() if v > 1),
        }

    def bare(payloads: list[dict], k: int) -> dict[str, Any]:
        files = []
        for i in range(k):
            path = tmp / f"bare-{k}-{i}.jsonl"
            path.write_bytes(b"\n".join(dumps(p) for p in payloads[i::k]) + b"\n")
            files.append(path)
        base = seen.count()
        procs = [
            subprocess.Popen(
                [common.PYTHON, "bare_loop.py", "--url", emu.base_url, "--bodies", str(path)],
                cwd=common.BENCH_DIR,
                env=common.child_env(),
                stdout=subprocess.DEVNULL,
            )
            for path in files
        ]
        try:
            result = seen.wait(base, len(payloads))
        finally:
            for proc in procs:
                proc.wait(60)
        return {"rate_per_s": round(result["rate_per_s"], 1)}

    arms: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for k in WORKERS:
            for engine in common.rotated(list(engines), k):
                card = fresh()
                payloads = store(engine, f"{engine}-{k}", card)
                base = seen.count()
                procs = start_workers(engine, k, emu.base_url, log)
                try:
                    result = seen.wait(base, n)
                finally:
                    stop_workers(procs)
                time.sleep(0.2)  # a late duplicate would still be counted
                arms.append(
                    {
                        "engine": engine,
                        "workers": k,
                        "declines": n,
                        "rate_per_s": round(result["rate_per_s"], 1),
                        "duplicates": duplicates(),
                        "queued_left": FlexChargeOrder.objects.filter(status="queued").count(),
                    }
                )
            card = fresh()
            payloads = store("db", f"bare-{k}", card)
            arms.append({"engine": "bare", "workers": k, "declines": n, **bare(payloads, k)})
    finally:
        emu.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(engine: str, k: int) -> float:
        return next(a["rate_per_s"] for a in arms if a["engine"] == engine and a["workers"] == k)

    summary: dict[str, Any] = {}
    for engine in [*engines, "bare"]:
        one = rate(engine, 1)
        summary[engine] = {
            **{f"{k}_per_s": rate(engine, k) for k in WORKERS},
            "2/1": common.ratio(rate(engine, 2), one),
            "4/1": common.ratio(rate(engine, 4), one),
            # Throughput each added process brings, as a share of what the first one does.
            "gain_per_added_worker_2": common.ratio(rate(engine, 2) - one, one),
            "gain_per_added_worker_4": common.ratio((rate(engine, 4) - one) / 3, one),
            **{f"vs_bare_{k}": common.ratio(rate(engine, k), rate("bare", k)) for k in WORKERS},
        }
    common.write_result(
        args.out,
        {
            "config": {
                "declines_per_arm": n,
                "engines": engines,
                "workers": WORKERS,
                "redis": bool(settings.BENCH_REDIS_URL),
                "rq_worker": "manage.py rqworker --job-class django_tasks_rq.Job (forks per job)",
                "rq-simple_worker": "the same with --worker-class rq.worker.SimpleWorker",
                "celery_worker": "celery worker --pool solo, contrib.celery wake-ups + drain",
                "seconds": round(time.monotonic() - started, 1),
            },
            "arms": arms,
            "summary": summary,
            "duplicates_total": sum(
                a["duplicates"]["keys_above_1"] + a["duplicates"]["order_ids_above_1"]
                for a in arms
                if "duplicates" in a
            ),
            "lost": sum(a.get("queued_left", 0) for a in arms),
        },
    )


if __name__ == "__main__":
    main()
