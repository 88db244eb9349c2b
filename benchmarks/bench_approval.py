"""Approval path: the cost ``payment_approved`` adds to a checkout request.

A, B and F (see ``benchsite/views.py``) are served by one gunicorn and driven
by one load generator, interleaved in blocks whose variant order rotates, so
drift in the machine (other processes, CPU frequency, the database's caches)
touches the three alike. No task worker runs: the tasks B enqueues stay
queued, which is what a checkout request pays for.

Usage (run.py sets the environment): ``python bench_approval.py --out FILE [--quick]``
"""

from __future__ import annotations

import argparse

import common
from loadgen import Request, run_block

VARIANTS = ["a", "b", "f"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    blocks, per_block, warmup = (4, 50, 20) if args.quick else (20, 100, 50)

    common.setup_django()
    from benchsite.models import FloorRow, HostOrder
    from django_tasks_db.models import DBTaskResult

    from django_flexcharge.models import Transmission

    common.reset_tables(Transmission, DBTaskResult, FloorRow, HostOrder)

    latencies: dict[str, list[float]] = {v: [] for v in VARIANTS}
    elapsed = dict.fromkeys(VARIANTS, 0.0)
    block_p50: dict[str, list[float]] = {v: [] for v in VARIANTS}
    statuses: dict[str, dict[int, int]] = {v: {} for v in VARIANTS}
    errors = dict.fromkeys(VARIANTS, 0)
    with common.Gunicorn() as server:
        warm_ok = 0
        for variant in VARIANTS:  # import and connection set-up in every server worker
            warm = run_block(
                server.port, [Request(f"/checkout/{variant}/")] * warmup, common.CONCURRENCY
            )
            warm_ok += warm.statuses.get(200, 0) if variant == "b" else 0
        for block in range(blocks):
            for variant in common.rotated(VARIANTS, block):
                result = run_block(
                    server.port, [Request(f"/checkout/{variant}/")] * per_block, common.CONCURRENCY
                )
                latencies[variant] += result.latencies
                elapsed[variant] += result.elapsed
                block_p50[variant].append(common.percentile(result.latencies, 50))
                for status, count in result.statuses.items():
                    statuses[variant][status] = statuses[variant].get(status, 0) + count
                errors[variant] += result.errors

    ok_b = statuses["b"].get(200, 0)
    stats = {v: common.summary_ms(latencies[v]) for v in VARIANTS}
    for v in VARIANTS:
        stats[v]["rps"] = round(len(latencies[v]) / elapsed[v], 1)
        stats[v]["statuses"] = statuses[v]
        stats[v]["errors"] = errors[v]
    # Per-block p50 ratios show how much of a difference is noise.
    block_bf = [b / f for b, f in zip(block_p50["b"], block_p50["f"], strict=True)]
    block_ba = [b / a for b, a in zip(block_p50["b"], block_p50["a"], strict=True)]
    common.write_result(
        args.out,
        {
            "config": {
                "blocks": blocks,
                "per_block": per_block,
                "warmup_per_variant": warmup,
                "concurrency": common.CONCURRENCY,
                "gunicorn": server.config,
            },
            "variants": stats,
            "ratios": {
                "B/A_p50": common.ratio(stats["b"]["p50_ms"], stats["a"]["p50_ms"]),
                "B/A_p95": common.ratio(stats["b"]["p95_ms"], stats["a"]["p95_ms"]),
                "B/F_p50": common.ratio(stats["b"]["p50_ms"], stats["f"]["p50_ms"]),
                "B/F_p95": common.ratio(stats["b"]["p95_ms"], stats["f"]["p95_ms"]),
                "B/F_block_p50_range": [round(min(block_bf), 3), round(max(block_bf), 3)],
                "B/A_block_p50_range": [round(min(block_ba), 3), round(max(block_ba), 3)],
            },
            # Correctness: every B request stored one Transmission and one task.
            "checks": {
                "b_answered_200": ok_b + warm_ok,
                "transmissions": Transmission.objects.count(),
                "tasks_enqueued": DBTaskResult.objects.count(),
                "floor_rows": FloorRow.objects.count(),
            },
        },
    )


if __name__ == "__main__":
    main()
