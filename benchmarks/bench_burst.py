"""Renewal burst: many declines at once, then their delivery to the emulator.

Per round (the rounds together make N declines):

1. **Caller.** ``evaluate_declined_payment`` for n declines with a
   ``VaultedCard``, timed per call (the call includes its own commit and the
   on-commit enqueue). Interleaved in sub-blocks with the caller's floor: one
   INSERT of a row holding the same ``/evaluate`` body, in a transaction. No
   worker runs meanwhile.
2. **Delivery**, three arms in an order that rotates per round, each to an
   emulator of its own with the same configuration:

   * the package: real ``manage.py db_worker`` processes (1 or 2) running its tasks;
   * the **bare loop** (``bare_loop.py``): one ``requests.Session`` POSTing the
     same stored bodies, no database at all (the brief's baseline);
   * the **queue floor** (``benchsite/tasks.py``): the same ``db_worker`` count
     running a task that only POSTs the body it carries: what the task queue
     itself costs, so the package's share can be told apart.

   Every rate is measured the same way, at the emulator, from the moment 5 %
   of the round has arrived to the last arrival, so process start-up is left
   out.

Rounds alternate the worker count (1, 2, 2, 1: an ABBA order cancels drift).
After each round the emulators' counters are collected and their order
lists cleared, so every arm's emulator starts each round alike (the emulator
once looked orders up with a linear scan; see docs/benchmarks.md).
Duplicates are counted over the whole run.

Auth: ``oauth2/token`` requests at the worker-side emulator over the burst,
with the settings' shared database cache; then a short extra round with
``LocMemCache`` in two workers to show why the cache must be shared.

Usage (run.py sets the environment):
``python bench_burst.py --out FILE --workers 1,2,2,1 [--quick]``
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import common

#: Bodies per round sent by the two baselines (bare loop, queue floor).
SAMPLE = 1000

#: The vault token of the one card every decline uses (a made-up value).
VAULT_TOKEN = "bench-vault-token"

#: What the task worker and the emulator's timers need: no webhooks and no
#: order-clock work competing with the requests being measured.
EMULATOR = {
    "webhook_url": None,
    "rescue_delay": None,
    "expire_delay": None,
    "pickup_delay": 3600.0,
}


class Arrivals:
    """Watches an emulator's ``/evaluate`` count from this process (it runs here)."""

    def __init__(self, emulator: Any) -> None:
        self.state = emulator.state

    def count(self) -> int:
        return len(self.state.evaluate_requests)

    def wait(self, base: int, n: int, timeout: float = 600, on_mark: Any = None) -> dict[str, Any]:
        """Block until ``n`` more requests arrived; time the 5 %..100 % stretch.

        ``on_mark()`` is called when 5 % arrived; its value is returned as ``at_mark``.
        """
        start_mark = base + max(1, n // 20)
        t_start = t_mark = t_end = None
        at_mark = None
        t0 = time.perf_counter()
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            seen = self.count() - base
            now = time.perf_counter()
            if seen > 0 and t_start is None:
                t_start = now
            if seen + base >= start_mark and t_mark is None:
                t_mark, mark_seen = now, seen
                at_mark = on_mark() if on_mark else None
            if seen >= n:
                t_end = now
                break
            time.sleep(0.002)
        if t_end is None:
            raise RuntimeError(f"only {self.count() - base} of {n} requests arrived in {timeout} s")
        return {
            "at_mark": at_mark,
            "after_mark": n - mark_seen,
            "rate_per_s": (n - mark_seen) / (t_end - t_mark) if t_end > t_mark else math.nan,
            "first_to_last_s": t_end - (t_start or t0),
            "since_start_s": t_end - t0,
        }


def start_workers(
    count: int, api_url: str, log: Path, cache: str = "db", queue: str = "default"
) -> list:
    env = common.child_env(BENCH_API_URL=api_url, BENCH_CACHE=cache)
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    cmd = [
        common.PYTHON,
        "manage.py",
        "db_worker",
        "--interval",
        "0.05",
        "--no-reload",
        "--no-startup-delay",
        "--queue-name",
        queue,
    ]
    return [
        subprocess.Popen(cmd, cwd=common.BENCH_DIR, env=env, stdout=out, stderr=out)
        for _ in range(count)
    ]


class Delivery:
    """The three delivery arms, each with an emulator of its own, measured alike."""

    def __init__(self, worker_log: Path) -> None:
        from flexcharge_emulator import Emulator, EmulatorConfig

        self.emulators = [Emulator(EmulatorConfig(**EMULATOR)).start() for _ in range(3)]
        self.package_seen, self.bare_seen, self.floor_seen = map(Arrivals, self.emulators)
        self.worker_log = worker_log

    def package(self, n_workers: int, n: int) -> dict[str, float]:
        """``db_worker`` processes run the package's tasks until ``n`` evaluates arrived."""
        base = self.package_seen.count()
        procs = start_workers(n_workers, self.emulators[0].base_url, self.worker_log)
        return self._drain(procs, self.package_seen, base, n)

    def _drain(self, procs: list, seen: Arrivals, base: int, n: int) -> dict[str, float]:
        """Wait for ``n`` arrivals; add the CPU the workers and the machine spent
        over the measured stretch (after start-up: from the 5 % mark to the end)."""

        def snapshot() -> tuple[float, tuple[float, float]]:
            cpu = sum(common.process_cpu_seconds(p.pid) for p in procs)
            return cpu, common.machine_cpu_times()

        try:
            result = seen.wait(base, n, on_mark=snapshot)
            cpu_end, machine_end = snapshot()
            cpu_mark, machine_mark = result.pop("at_mark")
            result["worker_cpu_ms_per_task"] = (cpu_end - cpu_mark) / result["after_mark"] * 1000
            result["machine_busy"] = common.busy_share(machine_mark, machine_end)
            return result
        finally:
            stop_workers(procs)

    def bare(self, payloads: list[dict], path: Path) -> dict[str, float]:
        """``bare_loop.py`` POSTs the same stored bodies, byte for byte, from its own process."""
        from django_flexcharge.client import dumps

        path.write_bytes(b"\n".join(dumps(p) for p in payloads) + b"\n")
        base = self.bare_seen.count()
        cmd = [common.PYTHON, "bare_loop.py", "--url", self.emulators[1].base_url]
        proc = subprocess.Popen(
            [*cmd, "--bodies", str(path)],
            cwd=common.BENCH_DIR,
            env=common.child_env(),
            stdout=subprocess.PIPE,
        )
        try:
            return self.bare_seen.wait(base, len(payloads))
        finally:
            proc.communicate(timeout=60)

    def queue_floor(self, n_workers: int, payloads: list[dict]) -> dict[str, float]:
        """``db_worker`` processes run ``post_evaluate`` (the body in the task's arguments)."""
        from benchsite.tasks import FLOOR_QUEUE, post_evaluate

        for body in payloads:  # enqueued before the clock starts, as the declines were
            post_evaluate.enqueue(body)
        base = self.floor_seen.count()
        url = self.emulators[2].base_url
        procs = start_workers(n_workers, url, self.worker_log, queue=FLOOR_QUEUE)
        return self._drain(procs, self.floor_seen, base, len(payloads))

    def stop(self) -> None:
        for emu in self.emulators:
            emu.stop()


def stop_workers(procs: list) -> None:
    threads = [threading.Thread(target=common.stop, args=(p,)) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", default="1,1", help="worker count per round")
    parser.add_argument("--declines", type=int, default=0, help="N (default 10,000; quick 1,000)")
    args = parser.parse_args()
    plan = [int(x) for x in args.workers.split(",")]
    total = args.declines or (1_000 if args.quick else 10_000)
    per_round = total // len(plan)
    sub_block = 100 if args.quick else 250

    common.setup_django()
    from benchsite.models import FloorRow
    from django.core.cache import cache
    from django.db import connection, transaction
    from django_tasks_db.models import DBTaskResult

    from django_flexcharge.models import (
        FlexChargeOrder,
        Refund,
        Transmission,
        VaultedCard,
        WebhookEvent,
    )
    from django_flexcharge.services import evaluate_declined_payment
    from django_flexcharge.types import Payment, Subscription
    from flexcharge_emulator import EmulatorConfig

    common.reset_tables(
        DBTaskResult, Transmission, WebhookEvent, Refund, FlexChargeOrder, VaultedCard, FloorRow
    )
    cache.clear()  # no token left over: the run's token requests start at 0
    card = VaultedCard.objects.create(
        token=VAULT_TOKEN,
        last4="1111",
        bin="411111",
        brand="VISA",
        exp_month=12,
        exp_year=2030,
        holder_name="Ada Lovelace",
        email="buyer@example.com",
    )
    payer, billing = common.buyer()

    def decline(order_id: str) -> tuple[Payment, Subscription]:
        payment = Payment(
            order_id=order_id,
            transaction_id=f"txn-{order_id}",
            amount=1999,
            currency="USD",
            response_code="05",
            response_description="Do not honor",
            processor="bench-gateway",
        )
        sub = Subscription(
            id=f"sub-{order_id}", interval="month", price=1999, currency="USD", payment_number=2
        )
        return payment, sub

    worker_log = common.BENCH_DIR / "results" / f"db_worker-{connection.vendor}.log"
    worker_log.unlink(missing_ok=True)
    delivery = Delivery(worker_log)
    emu_w, emu_b, emu_q = delivery.emulators
    workers_seen = delivery.package_seen
    tmp = Path(tempfile.mkdtemp(prefix="flexcharge-bench-"))
    counts: dict[str, Counter[str]] = {
        k: Counter() for k in ("evaluate", "evaluate_order_id", "evaluate_replay")
    }
    token_requests = 0
    caller_times: list[float] = []
    floor_times: list[float] = []
    rounds = []
    floor_body: dict[str, Any] | None = None
    burst_started = time.monotonic()
    try:
        for r, n_workers in enumerate(plan):
            # 1. The caller: declines and floor inserts in alternating sub-blocks.
            order_ids = [f"renewal-{r}-{i}" for i in range(per_round)]
            for start in range(0, per_round, sub_block):
                chunk = order_ids[start : start + sub_block]
                inputs = [decline(order_id) for order_id in chunk]
                floor_first = (start // sub_block) % 2 == 1
                if floor_first and floor_body is not None:
                    floor_times += floor_inserts(FloorRow, transaction, floor_body, chunk)
                for payment, sub in inputs:
                    t = time.perf_counter()
                    evaluate_declined_payment(
                        payment, card=card, payer=payer, billing=billing, subscription=sub
                    )
                    caller_times.append(time.perf_counter() - t)
                if floor_body is None:
                    floor_body = FlexChargeOrder.objects.get(order_id=chunk[0]).request_payload
                if not floor_first:
                    floor_times += floor_inserts(FloorRow, transaction, floor_body, chunk)

            # 2. Delivery: the package's workers and the two baselines, in rotating order.
            payloads = list(
                FlexChargeOrder.objects.filter(order_id__in=order_ids).values_list(
                    "request_payload", flat=True
                )
            )
            # The baselines reach their steady rate within a few hundred
            # requests: they send a sample of the round's bodies, not all of them.
            sample = payloads[:SAMPLE]
            arms = {
                "workers": partial(delivery.package, n_workers, per_round),
                "bare": partial(delivery.bare, sample, tmp / f"sample-{r}.jsonl"),
                "queue_floor": partial(delivery.queue_floor, n_workers, sample),
            }
            measured = {arm: arms[arm]() for arm in common.rotated(list(arms), r)}
            delivered, bare, floor_q = (
                measured["workers"],
                measured["bare"],
                measured["queue_floor"],
            )
            statuses = Counter(
                FlexChargeOrder.objects.filter(order_id__in=order_ids).values_list(
                    "status", flat=True
                )
            )
            rounds.append(
                {
                    "workers": n_workers,
                    "declines": per_round,
                    "workers_rate_per_s": round(delivered["rate_per_s"], 1),
                    "bare_rate_per_s": round(bare["rate_per_s"], 1),
                    "queue_floor_rate_per_s": round(floor_q["rate_per_s"], 1),
                    "worker_cpu_ms_per_task": round(delivered["worker_cpu_ms_per_task"], 2),
                    "queue_floor_cpu_ms_per_task": round(floor_q["worker_cpu_ms_per_task"], 2),
                    "machine_busy_workers": delivered["machine_busy"],
                    "machine_busy_queue_floor": floor_q["machine_busy"],
                    "workers_drain_s": round(delivered["since_start_s"], 2),
                    "bare_drain_s": round(bare["since_start_s"], 2),
                    "order_statuses": dict(statuses),
                }
            )
            # 3. Keep the counters, then clear the emulators' order lists (see the docstring).
            for kind, counter in counts.items():
                counter.update(emu_w.state.count_by_idempotency_key(kind))
            token_requests += emu_w.state.token_requests
            for emu in (emu_w, emu_b, emu_q):
                emu.reset()
        burst_seconds = time.monotonic() - burst_started

        locmem = locmem_round(emu_w, workers_seen, start_workers, stop_workers, worker_log, args)
    finally:
        delivery.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(n_workers: int, key: str) -> float:
        values = [x[key] for x in rounds if x["workers"] == n_workers]
        return round(sum(values) / len(values), 1) if values else math.nan

    one, two = rate(1, "workers_rate_per_s"), rate(2, "workers_rate_per_s")
    floor_one, floor_two = rate(1, "queue_floor_rate_per_s"), rate(2, "queue_floor_rate_per_s")
    bare_rate = round(sum(x["bare_rate_per_s"] for x in rounds) / len(rounds), 1)

    def mean(key: str, n_workers: int | None = None) -> float:
        values = [x[key] for x in rounds if n_workers in (None, x["workers"])]
        return round(sum(values) / len(values), 3) if values else math.nan

    ttl = EmulatorConfig().token_ttl
    from django_flexcharge.client import TOKEN_MARGIN

    common.write_result(
        args.out,
        {
            "config": {
                "declines": per_round * len(plan),
                "rounds": plan,
                "per_round": per_round,
                "baseline_sample_per_round": min(per_round, SAMPLE),
                "bare_and_queue_floor_note": "a sample of each round's stored bodies",
                "caller_sub_block": sub_block,
                "db_worker": "--interval 0.05 --no-reload --no-startup-delay",
                "token_ttl_s": ttl,
            },
            "caller": {
                "decline": common.summary_ms(caller_times),
                "floor": common.summary_ms(floor_times),
                "decline/floor_p50": common.ratio(
                    common.percentile(caller_times, 50), common.percentile(floor_times, 50)
                ),
            },
            "delivery": {
                "rounds": rounds,
                "one_worker_per_s": one,
                "two_workers_per_s": two,
                "bare_loop_per_s": bare_rate,
                "queue_floor_1_worker_per_s": floor_one,
                "queue_floor_2_workers_per_s": floor_two,
                "one_worker/bare": common.ratio(one, bare_rate),
                "queue_floor/bare": common.ratio(floor_one, bare_rate),
                "one_worker/queue_floor": common.ratio(one, floor_one),
                "two/one": common.ratio(two, one),
                "queue_floor_two/one": common.ratio(floor_two, floor_one),
                # Why two workers do or do not scale: CPU per task, and how busy
                # the whole machine (all cores) was while they drained.
                "worker_cpu_ms_per_task": mean("worker_cpu_ms_per_task"),
                "queue_floor_cpu_ms_per_task": mean("queue_floor_cpu_ms_per_task"),
                "machine_busy_1_worker": mean("machine_busy_workers", 1),
                "machine_busy_2_workers": mean("machine_busy_workers", 2),
            },
            "duplicates": {
                "evaluate_keys_sent": len(counts["evaluate"]),
                "keys_above_1": sum(1 for v in counts["evaluate"].values() if v > 1),
                "order_ids_above_1": sum(1 for v in counts["evaluate_order_id"].values() if v > 1),
                "replays": sum(counts["evaluate_replay"].values()),
            },
            "auth": {
                "token_requests": token_requests,
                "burst_seconds": round(burst_seconds, 1),
                "token_lifetimes_spanned": math.ceil(burst_seconds / (ttl - TOKEN_MARGIN)),
                "worker_processes_started": sum(plan),
                "cache": "DatabaseCache (shared by all processes)",
                "locmem_contrast": locmem,
            },
        },
    )


def floor_inserts(FloorRow: Any, transaction: Any, body: dict, chunk: list[str]) -> list[float]:
    """The caller's floor: one INSERT of a row holding an /evaluate body, committed."""
    times = []
    for order_id in chunk:
        t = time.perf_counter()
        with transaction.atomic():
            FloorRow.objects.create(
                order_id=order_id,
                transaction_id="floor",
                amount=1999,
                currency="USD",
                payload={**body, "orderId": order_id},
            )
        times.append(time.perf_counter() - t)
    return times


def locmem_round(emu, seen, start_workers, stop_workers, log, args) -> dict[str, Any]:
    """200 declines delivered by two workers whose cache is per-process LocMemCache."""
    from django_flexcharge.models import FlexChargeOrder, VaultedCard
    from django_flexcharge.services import evaluate_declined_payment
    from django_flexcharge.types import Payment

    n = 200
    card = VaultedCard.objects.get(token=VAULT_TOKEN)
    payer, billing = common.buyer()
    for i in range(n):
        payment = Payment(
            order_id=f"locmem-{i}",
            transaction_id=f"txn-locmem-{i}",
            amount=1999,
            currency="USD",
            response_code="05",
            processor="bench-gateway",
        )
        evaluate_declined_payment(payment, card=card, payer=payer, billing=billing)
    before = emu.state.token_requests
    base = seen.count()
    procs = start_workers(2, emu.base_url, log, cache="locmem")
    try:
        seen.wait(base, n)
    finally:
        stop_workers(procs)
    assert FlexChargeOrder.objects.filter(order_id__startswith="locmem-").count() == n
    return {
        "declines": n,
        "workers": 2,
        "cache": "LocMemCache (per process)",
        "token_requests": emu.state.token_requests - before,
    }


if __name__ == "__main__":
    main()
