"""Webhook intake: the package's view (W) against a store-the-body floor (D) and a bare 200 (Z).

Every W request is a distinct, correctly signed ``order.completed`` for a
distinct pending order, so each one does the full work: verify, store, lock
and move the order, record the transition. D and Z get deliveries of the same
size. Deliveries are signed just before their block (``x-fc-date`` must be
recent), for the host the load generator sends (``127.0.0.1:PORT``).

Then, in-process with Django's test client: SQL statements per event with
10^3, 10^5 and 10^6 stored orders (``CaptureQueriesContext``; BEGIN and COMMIT
count, as Django logs them on both databases), to show the cost does not grow
with the table. ``--quick`` stops at 10^4.

Usage (run.py sets the environment): ``python bench_webhook.py --out FILE [--quick]``
"""

from __future__ import annotations

import argparse
import time
import uuid

import common
from loadgen import Request, run_block

VARIANTS = ["w", "d", "z"]
VAULT_TOKEN = "bench-vault-token-0000000000000000"  # a made-up vault token
PATHS = {"w": "/flexcharge/webhook/", "d": "/hook/d/", "z": "/hook/z/"}


def realistic_payloads() -> tuple[dict, dict]:
    """An ``/evaluate`` body as the package stores it, and FlexCharge's answer (§6.4).

    A real pending order carries both as JSON; loading the order decodes them,
    so the benchmark's orders must carry them too.
    """
    from django_flexcharge.models import VaultedCard
    from django_flexcharge.payloads import evaluate_body
    from django_flexcharge.types import Payment, Subscription

    card = VaultedCard(
        token=VAULT_TOKEN,
        last4="1111",
        bin="411111",
        brand="VISA",
        exp_month=12,
        exp_year=2030,
        holder_name="Ada Lovelace",
    )
    payer, billing = common.buyer()
    body = evaluate_body(
        Payment(
            order_id="INV-0",
            transaction_id="txn-0",
            amount=1999,
            currency="USD",
            response_code="05",
            response_description="Do not honor",
            processor="bench-gateway",
        ),
        idempotency_key=str(uuid.uuid4()),
        card=card,
        payer=payer,
        billing=billing,
        subscription=Subscription(
            id="sub-0", interval="month", price=1999, currency="USD", payment_number=2
        ),
    )
    answer = {
        "orderSessionKey": "",
        "senseKey": None,
        "orderId": "",
        "success": True,
        "result": "Success",
        "status": "SUBMITTED",
        "statusCode": None,
        "errors": [],
        "customProperties": {},
    }
    return body, answer


def create_pending_orders(
    count: int, prefix: str, *, realistic: bool = True
) -> list[tuple[str, str]]:
    """``count`` pending orders FlexCharge holds; returns their (session key, order id).

    ``realistic=False`` leaves the JSON columns empty and returns nothing: the
    filler that grows the table to 10^6 rows only has to exist, and 10^6 full
    bodies would make the set-up, not the measurement, the slow part.
    """
    body, answer = realistic_payloads() if realistic else ({}, {})
    if not realistic:
        # Filler: in chunks, so 10^6 rows never sit in memory at once.
        for start in range(0, count, FILLER_CHUNK):
            ids = [
                (str(uuid.uuid4()), f"{prefix}-{i}")
                for i in range(start, min(count, start + FILLER_CHUNK))
            ]
            _bulk_orders(ids, body, answer)
        return []
    ids = [(str(uuid.uuid4()), f"{prefix}-{i}") for i in range(count)]
    _bulk_orders(ids, body, answer)
    return ids


#: Filler orders created per bulk_create round.
FILLER_CHUNK = 50_000


def _bulk_orders(ids: list[tuple[str, str]], body: dict, answer: dict) -> None:
    from django.db import transaction

    from django_flexcharge.models import FlexChargeOrder

    with transaction.atomic():
        FlexChargeOrder.objects.bulk_create(
            (
                FlexChargeOrder(
                    order_id=order_id,
                    order_session_key=key,
                    status=FlexChargeOrder.Status.PENDING,
                    amount=1999,
                    currency="USD",
                    email="buyer@example.com",
                    decline_code="05",
                    decline_message="Do not honor",
                    processor="bench-gateway",
                    transaction_id=f"txn-{order_id}",
                    subscription_id="sub-0",
                    attempts=1,
                    request_payload={**body, "orderId": order_id} if body else {},
                    response_payload={**answer, "orderSessionKey": key, "orderId": key}
                    if answer
                    else {},
                )
                for key, order_id in ids
            ),
            batch_size=2000,
        )


def deliveries(variant: str, orders: list[tuple[str, str]], host: str) -> list[Request]:
    from django_flexcharge.testing import signed_webhook

    requests = []
    for key, order_id in orders:
        body, headers = signed_webhook(
            "order.completed", order_id=key, external_order_id=order_id, host=host
        )
        headers["Content-Type"] = "text/plain; charset=utf-8"
        requests.append(Request(PATHS[variant], body, headers))
    return requests


def is_transaction_control(sql: str) -> bool:
    return sql.split(" ", 1)[0].upper() in {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"}


def queries_per_event(sizes: list[int], events: int) -> list[dict]:
    """SQL statements and in-process time of one delivery, at each stored-order count."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from django_flexcharge.models import FlexChargeOrder, StatusChange, WebhookEvent
    from django_flexcharge.testing import post_webhook

    client = Client()
    common.reset_tables(StatusChange, WebhookEvent, FlexChargeOrder)
    results = []
    stored = 0
    for size in sizes:
        # Filler first, then the orders the deliveries are for (realistic rows).
        create_pending_orders(size - stored - events, f"q{size}", realistic=False)
        targets = create_pending_orders(events, f"q{size}-target")
        stored = size
        counts, times, statements = [], [], []
        for key, order_id in targets:
            with CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                response = post_webhook(client, order_id=key, external_order_id=order_id)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
            counts.append(len(ctx.captured_queries))
            statements = [q["sql"] for q in ctx.captured_queries]
        results.append(
            {
                "stored_orders": FlexChargeOrder.objects.count(),
                # Everything Django sent, and without transaction control
                # (BEGIN/COMMIT/SAVEPOINT/RELEASE): SQLite logs those, PostgreSQL does not.
                "queries_min": min(counts),
                "queries_max": max(counts),
                "data_statements": sum(not is_transaction_control(s) for s in statements),
                "in_process_p50_ms": round(common.percentile(times, 50) * 1000, 3),
                "statements": [s[:160] for s in statements],
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    blocks, per_block, warmup = (4, 50, 20) if args.quick else (20, 100, 50)
    sizes = [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000]

    common.setup_django()
    from benchsite.models import RawDelivery

    from django_flexcharge.models import (
        CallAttempt,
        FlexChargeOrder,
        Refund,
        StatusChange,
        WebhookEvent,
    )

    # Children first: SQLite's DELETE checks the foreign keys.
    common.reset_tables(
        StatusChange, CallAttempt, WebhookEvent, Refund, FlexChargeOrder, RawDelivery
    )
    # One pending order per W request (warm-up included), none used twice.
    pending = create_pending_orders(blocks * per_block + warmup, "hook")
    # D and Z get deliveries of the same size for orders that do not exist.
    fake = [(str(uuid.uuid4()), f"hook-{i}") for i in range(per_block)]

    latencies: dict[str, list[float]] = {v: [] for v in VARIANTS}
    elapsed = dict.fromkeys(VARIANTS, 0.0)
    statuses: dict[str, dict[int, int]] = {v: {} for v in VARIANTS}
    block_rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with common.Gunicorn() as server:
        host = f"127.0.0.1:{server.port}"

        def batch(variant: str, count: int) -> list[Request]:
            if variant == "w":
                taken = pending[:count]
                del pending[:count]
                return deliveries(variant, taken, host)
            return deliveries(variant, fake[:count], host)

        for variant in VARIANTS:
            warm = run_block(server.port, batch(variant, warmup), common.CONCURRENCY)
            assert warm.statuses.get(200) == warmup, (variant, warm.statuses)
        for block in range(blocks):
            for variant in common.rotated(VARIANTS, block):
                requests = batch(variant, per_block)
                result = run_block(server.port, requests, common.CONCURRENCY)
                latencies[variant] += result.latencies
                elapsed[variant] += result.elapsed
                block_rps[variant].append(len(result.latencies) / result.elapsed)
                for status, count in result.statuses.items():
                    statuses[variant][status] = statuses[variant].get(status, 0) + count

    stats = {v: common.summary_ms(latencies[v]) for v in VARIANTS}
    for v in VARIANTS:
        stats[v]["rps"] = round(len(latencies[v]) / elapsed[v], 1)
        stats[v]["statuses"] = statuses[v]
    block_wd = [w / d for w, d in zip(block_rps["w"], block_rps["d"], strict=True)]
    applied = WebhookEvent.objects.filter(status=WebhookEvent.Status.APPLIED).count()
    approved = FlexChargeOrder.objects.filter(status=FlexChargeOrder.Status.APPROVED).count()
    result = {
        "config": {
            "blocks": blocks,
            "per_block": per_block,
            "warmup_per_variant": warmup,
            "concurrency": common.CONCURRENCY,
            "gunicorn": server.config,
            "body_bytes": len(deliveries("z", fake[:1], host)[0].body),
        },
        "variants": stats,
        "ratios": {
            "W/D_rps": common.ratio(stats["w"]["rps"], stats["d"]["rps"]),
            "W/Z_rps": common.ratio(stats["w"]["rps"], stats["z"]["rps"]),
            "W/D_p95": common.ratio(stats["w"]["p95_ms"], stats["d"]["p95_ms"]),
            "W/D_block_rps_range": [round(min(block_wd), 3), round(max(block_wd), 3)],
        },
        "checks": {
            "w_requests": blocks * per_block + warmup,
            "events_applied": applied,
            "orders_approved": approved,
        },
    }
    result["queries"] = queries_per_event(sizes, 10 if args.quick else 30)
    common.write_result(args.out, result)


if __name__ == "__main__":
    main()
