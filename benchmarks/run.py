"""django-flexcharge benchmarks: the four performance ratios, each against its floor.

    make bench                      # full run, SQLite and PostgreSQL (~10 min on 2 cores)
    make bench ARGS=--quick         # smoke run (~2 min)
    .venv/bin/python benchmarks/run.py --only approval,webhook --db sqlite

Every figure is a ratio to a baseline measured in the same run, in the same
process tree, interleaved with it: absolute times on a shared machine mean
little, ratios measured side by side do. Each phase runs in a process of its
own (``bench_<phase>.py``) per database, so Django is configured once per
process; this script prepares the databases, runs the phases, prints the
table and writes ``benchmarks/results/latest.json``. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SECTIONS = ["approval", "webhook", "burst", "auth", "engines"]
RESULTS = common.BENCH_DIR / "results"
PG_BASE = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
#: BENCH_DB_SUFFIX (or BENCH_PG_NAME) keeps parallel runs (several worktrees, one
#: PostgreSQL) apart; the suffix names the SQLite file too.
DB_SUFFIX = os.environ.get("BENCH_DB_SUFFIX", "")
if not DB_SUFFIX.replace("_", "").isalnum() and DB_SUFFIX:
    raise SystemExit("BENCH_DB_SUFFIX: letters, digits and _ only (it names a database)")
PG_NAME = os.environ.get("BENCH_PG_NAME", "flexcharge_bench" + DB_SUFFIX)
SQLITE_PATH = RESULTS / f"bench{DB_SUFFIX}.sqlite3"

#: Worker count per burst round. Two workers only on PostgreSQL: SQLite has one
#: writer at a time, so a second worker mostly waits for the lock.
#: More, shorter rounds interleave the arms more finely against drift on a shared machine.
WORKER_PLAN = {
    ("sqlite", False): "1,1,1,1",
    ("postgres", False): "1,2,2,1,1,2,2,1",
    ("sqlite", True): "1,1",
    ("postgres", True): "1,2",
}


# --- databases ---


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_BASE + "/postgres", connect_timeout=3):
            return True
    except Exception:
        return False


def ensure_postgres() -> bool:
    """PostgreSQL up, starting the CI cluster (``.ci/postgres.sh``) once if it is down."""
    if postgres_available():
        return True
    script = common.REPO / ".ci" / "postgres.sh"
    print(f"PostgreSQL is not answering; trying {script} ...", flush=True)
    subprocess.run(["bash", str(script)], check=False)
    return postgres_available()


def prepare(db: str) -> str:
    """A fresh, migrated database; returns its URL."""
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{SQLITE_PATH}"
    else:
        import psycopg

        with psycopg.connect(PG_BASE + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_NAME}")
        url = f"{PG_BASE}/{PG_NAME}"
    env = common.child_env(BENCH_DATABASE_URL=url)
    for command in (["migrate", "-v0"], ["createcachetable"]):
        subprocess.run(
            [common.PYTHON, "manage.py", *command], cwd=common.BENCH_DIR, env=env, check=True
        )
    return url


def machine(dbs: list[str]) -> dict[str, Any]:
    import django
    import gunicorn

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "gunicorn": gunicorn.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "sqlite": sqlite3.sqlite_version,
    }
    if "postgres" in dbs:
        import psycopg

        with psycopg.connect(PG_BASE + "/postgres") as conn:
            info["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
            info["postgres_settings"] = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("fsync", "synchronous_commit", "shared_buffers")
            }
    return info


def run_phase(
    phase: str, db: str, url: str, quick: bool, extra: list[str], **env: str
) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(prefix=f"bench-{phase}-{db}-", suffix=".json")[1])
    cmd = [common.PYTHON, f"bench_{phase}.py", "--out", str(out), *extra]
    if quick:
        cmd.append("--quick")
    started = time.monotonic()
    print(f"  {phase:<9} {db:<9} ...", end="", flush=True)
    subprocess.run(
        cmd, cwd=common.BENCH_DIR, env=common.child_env(BENCH_DATABASE_URL=url, **env), check=True
    )
    print(f" {time.monotonic() - started:5.1f} s", flush=True)
    data = json.loads(out.read_text())
    out.unlink()
    # Other work on the machine shows here: ratios survive it better than absolutes.
    data["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return data


# --- targets ---


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target, per database: the measured figure and whether it is met."""
    checks = []

    def add(section: str, name: str, limit: str, get: Any, ok: Any) -> None:
        for db, data in results.items():
            if section not in data:
                continue
            value = get(data[section])
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            checks.append(
                {
                    "section": section,
                    "target": name,
                    "limit": limit,
                    "db": db,
                    "value": value,
                    "met": bool(ok(value)),
                }
            )

    # Approval: the target of the batch-delivery round (one wake-up per caller transaction).
    add("approval", "B/F p50", "<= 1.2", lambda d: d["ratios"]["B/F_p50"], lambda v: v <= 1.2)
    add("approval", "B/F p95", "<= 1.2", lambda d: d["ratios"]["B/F_p95"], lambda v: v <= 1.2)
    add("webhook", "W/D req/s", ">= 0.6", lambda d: d["ratios"]["W/D_rps"], lambda v: v >= 0.6)
    add(
        "webhook",
        "SQL per event incl. BEGIN/COMMIT (max over sizes)",
        "<= 5",
        lambda d: max(q["queries_max"] for q in d["queries"]),
        lambda v: v <= 5,
    )
    add(
        "webhook",
        "queries flat in table size",
        "same count at each size",
        lambda d: "/".join(str(q["queries_max"]) for q in d["queries"]),
        lambda v: len(set(v.split("/"))) == 1,
    )
    add(
        "burst",
        "caller ms per decline (mean)",
        "<= 1 ms",
        lambda d: d["caller"]["decline"]["mean_ms"],
        lambda v: v <= 1.0,
    )
    add(
        "burst",
        "1 worker / bare loop",
        ">= 0.6",
        lambda d: d["delivery"]["one_worker/bare"],
        lambda v: v >= 0.6,
    )
    add(
        "burst",
        "2 workers / 1 worker",
        ">= 1.7",
        lambda d: d["delivery"]["two/one"],
        lambda v: v >= 1.7,
    )
    add(
        "burst",
        "duplicate sends",
        "0",
        lambda d: d["duplicates"]["keys_above_1"] + d["duplicates"]["order_ids_above_1"],
        lambda v: v == 0,
    )
    add(
        "engines",
        "duplicate sends, every engine and worker count",
        "0",
        lambda d: d["duplicates_total"],
        lambda v: v == 0,
    )
    add(
        "engines",
        "rows left queued after an arm",
        "0",
        lambda d: d["lost"],
        lambda v: v == 0,
    )
    add(
        "auth",
        "token requests per token lifetime",
        "<= 1",
        lambda d: round(d["token_requests"] / d["token_lifetimes_spanned"], 2),
        lambda v: v <= 1,
    )
    return checks


# --- the table ---


def table(results: dict[str, dict[str, Any]]) -> str:
    dbs = list(results)
    rows: list[tuple[str, ...]] = []

    def row(label: str, fn: Any) -> None:
        cells = []
        for db in dbs:
            try:
                cells.append(fn(results[db]))
            except (KeyError, TypeError, ValueError):
                cells.append("-")
        rows.append((label, *cells))

    def section(title: str) -> None:
        rows.append((f"## {title}", *[""] * len(dbs)))

    def lat(v: dict[str, Any]) -> str:
        return f"{v['p50_ms']:.2f} / {v['p95_ms']:.2f}"

    if any("approval" in r for r in results.values()):
        section("approval path (ms p50 / p95)")
        for key, label in (
            ("a", "A checkout"),
            ("b", "B + payment_approved"),
            ("f", "F floor"),
        ):
            row(label, lambda r, key=key: lat(r["approval"]["variants"][key]))
        row("B/A  p50 / p95", lambda r: "{B/A_p50} / {B/A_p95}".format(**r["approval"]["ratios"]))
        row("B/F  p50 / p95", lambda r: "{B/F_p50} / {B/F_p95}".format(**r["approval"]["ratios"]))
        row(
            "B/F  per-block p50 range",
            lambda r: "{} .. {}".format(*r["approval"]["ratios"]["B/F_block_p50_range"]),
        )
    if any("webhook" in r for r in results.values()):
        section("webhook intake (req/s, p95 ms)")
        for key, label in (
            ("w", "W package view"),
            ("d", "D floor: store body"),
            ("z", "Z bare 200"),
        ):
            row(
                label,
                lambda r, key=key: "{rps:.0f}/s, {p95_ms:.2f}".format(
                    **r["webhook"]["variants"][key]
                ),
            )
        row("W/D  req/s", lambda r: str(r["webhook"]["ratios"]["W/D_rps"]))
        row("W/Z  req/s", lambda r: str(r["webhook"]["ratios"]["W/Z_rps"]))
        row(
            "SQL per event (all / data)",
            lambda r: ", ".join(
                f"{q['stored_orders']:.0e}: {q['queries_max']} / {q['data_statements']}"
                for q in r["webhook"]["queries"]
            ),
        )
    if any("burst" in r for r in results.values()):
        section("renewal burst")
        row(
            "caller ms/decline p50 / p95 / mean",
            lambda r: "{p50_ms:.2f} / {p95_ms:.2f} / {mean_ms:.2f}".format(
                **r["burst"]["caller"]["decline"]
            ),
        )
        row(
            "caller floor (1 INSERT) p50",
            lambda r: "{p50_ms:.2f}".format(**r["burst"]["caller"]["floor"]),
        )
        row("1 worker  /s", lambda r: str(r["burst"]["delivery"]["one_worker_per_s"]))
        row("2 workers /s", lambda r: str(r["burst"]["delivery"]["two_workers_per_s"]))
        row("bare loop /s", lambda r: str(r["burst"]["delivery"]["bare_loop_per_s"]))
        row(
            "queue floor /s (1 / 2 workers)",
            lambda r: "{queue_floor_1_worker_per_s} / {queue_floor_2_workers_per_s}".format(
                **r["burst"]["delivery"]
            ),
        )
        row("1 worker / bare", lambda r: str(r["burst"]["delivery"]["one_worker/bare"]))
        row("2 workers / 1", lambda r: str(r["burst"]["delivery"]["two/one"]))
        row("queue floor / bare", lambda r: str(r["burst"]["delivery"]["queue_floor/bare"]))
        row(
            "worker CPU ms/task (package / queue floor)",
            lambda r: "{worker_cpu_ms_per_task} / {queue_floor_cpu_ms_per_task}".format(
                **r["burst"]["delivery"]
            ),
        )
        row(
            "machine busy, 1 / 2 package workers",
            lambda r: "{machine_busy_1_worker} / {machine_busy_2_workers}".format(
                **r["burst"]["delivery"]
            ),
        )
        row(
            "1 worker / queue floor",
            lambda r: str(r["burst"]["delivery"]["one_worker/queue_floor"]),
        )
        row(
            "duplicates (keys / orderIds)",
            lambda r: "{keys_above_1} / {order_ids_above_1} of {evaluate_keys_sent}".format(
                **r["burst"]["duplicates"]
            ),
        )
    if any("engines" in r for r in results.values()):
        section("scale-out (evaluates/s for 1 / 2 / 4 processes; 4/1)")
        for engine, label in (
            ("db", "db_worker"),
            ("rq", "RQ rqworker (fork per job)"),
            ("rq-simple", "RQ SimpleWorker"),
            ("celery", "Celery drain"),
            ("bare", "bare loop"),
        ):
            row(
                label,
                lambda r, engine=engine: "{1_per_s} / {2_per_s} / {4_per_s}; {4/1}".format(
                    **r["engines"]["summary"][engine]
                ),
            )
        row("duplicates (all arms)", lambda r: str(r["engines"]["duplicates_total"]))
    if any("auth" in r for r in results.values()):
        section("auth")
        row(
            "token requests (lifetimes spanned)",
            lambda r: "{token_requests} ({token_lifetimes_spanned})".format(**r["auth"]),
        )
        row(
            "with LocMemCache, 2 workers",
            lambda r: str(r["auth"]["locmem_contrast"]["token_requests"]),
        )

    if any("profile" in r for r in results.values()):
        section("in-process ms per op (SQL ms, round trips)")
        for path, key, label in (
            ("approval", "b", "B"),
            ("approval", "f", "F"),
            ("webhook", "w", "W"),
            ("webhook", "d", "D"),
            ("burst", "decline", "decline"),
            ("burst", "floor", "decline floor"),
            ("burst", "worker_row", "worker, per row sent"),
        ):
            row(
                label,
                lambda r, path=path, key=key: "{ms:.2f} ({sql_ms:.2f}, {round_trips:g})".format(
                    **r["profile"][path]["in_process"][key]
                ),
            )

        row(
            "requests call, trust_env on / off",
            lambda r: "{:.3f} / {:.3f}".format(
                r["profile"]["burst"]["requests_per_call"]["trust_env"]["ms"],
                r["profile"]["burst"]["requests_per_call"]["no_trust_env"]["ms"],
            ),
        )

    header = ("figure", *dbs)
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for r in rows:
        lines.append(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 2 min)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="comma list of " + ",".join(SECTIONS)
    )
    parser.add_argument("--db", default="sqlite,postgres", help="comma list: sqlite,postgres")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile pass")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    # `make bench ARGS=--quick`: make puts command-line variables in the
    # recipe's environment, and the Makefile's recipe passes no arguments.
    argv = sys.argv[1:] or shlex.split(os.environ.get("ARGS", ""))
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    dbs = [d for d in args.db.split(",") if d]
    if "postgres" in dbs and not ensure_postgres():
        print("PostgreSQL is unavailable: measuring SQLite only.", flush=True)
        dbs.remove("postgres")

    started = time.monotonic()
    info = machine(dbs)
    print(
        f"{info['cpus']} CPUs, Python {info['python']}, Django {info['django']}, "
        f"SQLite {info['sqlite']}, PostgreSQL {info.get('postgres', '-')}",
        flush=True,
    )
    urls = {db: prepare(db) for db in dbs}
    results: dict[str, dict[str, Any]] = {db: {} for db in dbs}
    # Phase-major: both databases are measured for one phase before the next.
    if "approval" in only:
        for db in dbs:
            results[db]["approval"] = run_phase("approval", db, urls[db], args.quick, [])
    if "webhook" in only:
        for db in dbs:
            results[db]["webhook"] = run_phase("webhook", db, urls[db], args.quick, [])
    if "burst" in only or "auth" in only:
        for db in dbs:
            plan = WORKER_PLAN[(db, args.quick)]
            burst = run_phase("burst", db, urls[db], args.quick, ["--workers", plan])
            results[db]["auth"] = burst.pop("auth")
            if "burst" in only:
                results[db]["burst"] = burst
    if "engines" in only and "postgres" in dbs:
        # Scale-out is a PostgreSQL question: several workers on SQLite wait for one lock.
        with common.RedisServer() as redis:
            if not redis.url:
                print("  redis-server is not installed: engines measures db_worker only.")
            results["postgres"]["engines"] = run_phase(
                "engines", "postgres", urls["postgres"], args.quick, [], BENCH_REDIS_URL=redis.url
            )
    if not args.no_profile:
        sections = ",".join(s for s in only if s not in ("auth", "engines"))
        for db in dbs:
            results[db]["profile"] = run_phase(
                "profile", db, urls[db], args.quick, ["--sections", sections]
            )

    checks = targets(results)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "machine": info,
        "duration_s": round(time.monotonic() - started, 1),
        "results": results,
        "targets": checks,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print()
    print(table(results))
    print()
    for c in checks:
        mark = "met   " if c["met"] else "MISSED"
        print(
            f"{mark} {c['section']:<8} {c['target']:<48} {c['limit']:<28} {c['db']:<9} {c['value']}"
        )
    print(f"\n{report['duration_s']} s; written to {args.out}")


if __name__ == "__main__":
    main()
