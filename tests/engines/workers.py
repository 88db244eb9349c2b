"""Worker processes of each engine, started and killed as a site's process manager would.

``db``: ``manage.py db_worker``. ``rq``: ``manage.py rqworker`` with the
backend's job class and RQ's scheduler (which runs ``run_after`` jobs);
``rq-simple``: the same with RQ's ``SimpleWorker`` (no fork per job).
``celery``: ``celery worker`` (solo pool), one of them with beat (``-B``),
which runs ``contrib.celery.drain`` every ``FC_BEAT`` seconds.

Each worker runs in its own session; a kill takes every descendant too (RQ
forks a work horse per job, in a session of its own: the horse makes the
HTTP call, and a dead worker's horse must die with it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.reliability.test_faults import REPO, Workers

ENGINES = ("db", "rq", "rq-simple", "celery")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_command(engine: str, number: int, workdir: Path, *, beat: bool) -> list[str]:
    if engine == "db":
        return [
            *("-m", "django", "db_worker", "--interval", "0.05", "--no-startup-delay"),
            *("--no-reload", "--worker-id", f"w{number}"),
        ]
    if engine.startswith("rq"):
        command = [
            *("-m", "django", "rqworker", "--job-class", "django_tasks_rq.Job"),
            *("--with-scheduler", "--name", f"w{number}-{os.getpid()}", "default"),
        ]
        if engine == "rq-simple":  # no fork per job (docs/engines/rq.md)
            command += ["--worker-class", "rq.worker.SimpleWorker"]
        return command
    if engine == "celery":
        command = [
            *("-m", "celery", "-A", "tests.engines.celery_app", "worker", "--pool", "solo"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("-n", f"w{number}-{os.getpid()}@%h", "--loglevel", "INFO"),
        ]
        if beat:
            command += ["-B", "-s", str(workdir / f"beat-{number}")]
        return command
    raise ValueError(engine)


class EngineWorkers(Workers):
    """``Workers`` of the reliability tests on ``engine``, against ``redis_url``."""

    def __init__(
        self, tmp_path: Path, database_url: str, api_url: str, engine: str, redis_url: str
    ) -> None:
        super().__init__(tmp_path, database_url, api_url)
        self.engine = engine
        self.env.update(
            {
                "DJANGO_SETTINGS_MODULE": "tests.engines.worker_settings",
                "FC_ENGINE": engine.split("-")[0],
                "FC_REDIS_URL": redis_url,
            }
        )

    def ctl(self, *args: object) -> dict:
        import json

        out = self.run("-m", "tests.engines.enginectl", *map(str, args))
        return json.loads(out.strip().splitlines()[-1])

    def start_worker(self, *, beat: bool = True) -> subprocess.Popen:
        self.started += 1
        out = (self.tmp_path / f"{self.engine}-worker-{self.started}.out").open("w")
        worker = subprocess.Popen(
            [sys.executable, *worker_command(self.engine, self.started, self.tmp_path, beat=beat)],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen) -> None:
        below = descendants(worker.pid)
        os.killpg(worker.pid, signal.SIGKILL)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.wait(10)
        self.running.remove(worker)

    def stop_all(self) -> None:
        for worker in self.running:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.running:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(5)
        self.running.clear()

    def outputs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:])
            for path in sorted(self.tmp_path.glob(f"{self.engine}-worker-*.out"))
        )
