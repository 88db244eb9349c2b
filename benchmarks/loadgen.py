"""A small closed-loop HTTP load generator for 127.0.0.1.

``run_block(port, requests, concurrency)`` sends a fixed list of requests with
``concurrency`` threads, each holding its own ``http.client`` connection and
sending its next request as soon as the previous answer is read. It is bounded
twice: by the list (each request is sent once) and by a deadline, after which
the threads stop on their own. Latency is measured per request in the client,
from the first byte written to the last byte read.

gunicorn's sync workers close the connection after every response, so the
connection is re-opened per request (on loopback that costs tens of
microseconds, the same for every variant); with a keep-alive server the same
connection is reused.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Request:
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass
class BlockResult:
    latencies: list[float]  # seconds, one per answered request
    statuses: dict[int, int]  # status -> count
    errors: int  # connection errors and timeouts
    elapsed: float  # wall time of the block, seconds


def run_block(
    port: int, requests: list[Request], concurrency: int, *, deadline: float = 120.0
) -> BlockResult:
    """Send every request once; return latencies, statuses and the block's wall time."""
    lock = threading.Lock()
    position = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    stop_at = time.monotonic() + deadline

    def take() -> Request | None:
        nonlocal position
        with lock:
            if position >= len(requests) or time.monotonic() > stop_at:
                return None
            position += 1
            return requests[position - 1]

    def worker() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        seen: dict[int, int] = {}
        failed = 0
        while (req := take()) is not None:
            started = time.perf_counter()
            try:
                conn.request(req.method, req.path, body=req.body, headers=req.headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                continue
            mine.append(time.perf_counter() - started)
            seen[response.status] = seen.get(response.status, 0) + 1
            if response.will_close:
                conn.close()
        conn.close()
        with lock:
            latencies.extend(mine)
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count
            errors += failed

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline + 30)
    return BlockResult(latencies, statuses, errors, time.perf_counter() - started)
