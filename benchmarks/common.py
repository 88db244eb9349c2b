"""Shared by the phases: paths, the environment of child processes, gunicorn, statistics.

Every phase runs in a process of its own (``python benchmarks/bench_<phase>.py``)
with ``BENCH_DATABASE_URL`` set by ``run.py``, so one run can measure SQLite
and PostgreSQL side by side: Django is configured once per process.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable

#: gunicorn: fixed, reported with the results. Sync workers, as most sites run.
GUNICORN_WORKERS = 2
#: Client threads of the load generator: one per server worker, so each
#: request is served at once and latency is service time, not queueing.
CONCURRENCY = 2


#: The one buyer every benchmark's payments carry.
BUYER_EMAIL = "buyer@example.com"


def buyer() -> tuple[Any, Any]:
    """The ``types.Payer`` and ``types.BillingAddress`` of every benchmark payment."""
    from django_flexcharge.types import BillingAddress, Payer

    billing = BillingAddress(
        first_name="Ada",
        last_name="Lovelace",
        address_line1="1 Main St",
        city="Springfield",
        zipcode="12345",
        country_code="US",
        state="IL",
    )
    return Payer(email=BUYER_EMAIL), billing


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child process (server, workers, phases)."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "benchsite.settings"
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(REPO), str(REPO / "emulator")])
    env.update(extra)
    return env


def setup_django() -> None:
    """Configure Django in this (phase) process, from the environment run.py set."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
    for path in (str(BENCH_DIR), str(REPO), str(REPO / "emulator")):
        if path not in sys.path:
            sys.path.insert(0, path)
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """``gunicorn benchsite.wsgi`` on 127.0.0.1 with fixed sync workers; a context manager."""

    def __init__(self, workers: int = GUNICORN_WORKERS, log: Path | None = None) -> None:
        self.workers = workers
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {"workers": self.workers, "worker_class": "sync", "bind": "127.0.0.1"}

    def __enter__(self) -> Gunicorn:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "benchsite.wsgi:application",
                "--workers",
                str(self.workers),
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--backlog",
                "256",
                "--log-level",
                "warning",
            ],
            cwd=BENCH_DIR,
            env=child_env(),
            stdout=out,
            stderr=out,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping/", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("gunicorn did not answer within 30 s")

    def __exit__(self, *exc: object) -> None:
        stop(self.proc)


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 20) -> None:
    """SIGTERM (graceful: gunicorn and db_worker finish the current request/task), then kill."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- CPU accounting (Linux /proc; NaN elsewhere) ---


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def machine_cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot: two readings give how busy the machine was."""
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan, math.nan
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Share of all CPUs that were busy between two ``machine_cpu_times()`` readings."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total else math.nan


# --- statistics ---


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of unsorted ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(latencies: list[float]) -> dict[str, float]:
    """p50, p95, mean in milliseconds, and the count."""
    return {
        "n": len(latencies),
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p95_ms": round(percentile(latencies, 95) * 1000, 3),
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 3) if latencies else math.nan,
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else math.nan


def rotated(items: list[str], shift: int) -> list[str]:
    """``items`` rotated by ``shift``: each block runs the variants in another order."""
    shift %= len(items)
    return items[shift:] + items[:shift]


def write_result(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str))


def reset_tables(*models: Any) -> None:
    """Empty tables between phases with one statement each (no per-row signals)."""
    from django.db import connection

    ordered: list[Any] = []

    from django.apps import apps

    def children_first(model: Any) -> None:
        # Rows pointing at a table go before it (SQLite checks foreign keys per statement);
        # every model's foreign keys, hidden ones (related_name="+") included.
        if model in ordered:
            return
        for other in apps.get_models():
            for field in other._meta.concrete_fields:
                if field.is_relation and field.related_model is model and other is not model:
                    children_first(other)
        ordered.append(model)

    for model in models:
        children_first(model)
    with connection.cursor() as cursor:
        for model in ordered if connection.vendor != "postgresql" else models:
            table = connection.ops.quote_name(model._meta.db_table)
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {table} CASCADE")
            else:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - a model's own table name


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port (no persistence); a context manager.

    ``url`` is ``redis://127.0.0.1:PORT`` (callers add the database number);
    empty when redis-server is not installed.
    """

    def __init__(self) -> None:
        import shutil

        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}" if self.binary else ""
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        if not self.binary:
            return self
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def __exit__(self, *exc: object) -> None:
        stop(self.proc)
