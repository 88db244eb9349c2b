"""The end-to-end suite (tests/e2e) with RQ or Celery workers in place of ``db_worker``.

The same site, emulator and scenarios as tests/e2e, over real HTTP; only the
task engine differs: the example site's settings plus the engine's settings
(tests/engines/engine_settings.py, as docs/engines/ describe them), a real
redis-server, and the engine's own worker command.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.e2e import test_example_site as scenarios
from tests.e2e.stack import EXAMPLE, REPO, Process, Stack, running_stack
from tests.engines.redis_server import RedisServer
from tests.engines.workers import worker_command

pytestmark = [pytest.mark.engines, pytest.mark.e2e]

SCENARIOS = [name for name in dir(scenarios) if name.startswith("test_")]


def start_worker(stack: Stack, engine: str) -> Process:
    """The engine's worker, from the example project's directory, with the site's settings."""
    command = worker_command(engine, 1, stack.workdir, beat=True)
    log = stack.workdir / f"{engine}-worker.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, *command],
            cwd=EXAMPLE,
            env=stack.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Process(f"{engine} worker", popen, log)
    stack.processes.append(proc)
    return proc


@pytest.fixture(scope="module", params=["rq", "celery"])
def engine_stack(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    engine = request.param
    workdir = tmp_path_factory.mktemp(f"e2e-{engine}")
    redis = RedisServer(workdir).start()
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.engines.site_settings",
        "PYTHONPATH": f"{REPO}:{REPO / 'emulator'}:{EXAMPLE}",
        "FC_ENGINE": engine,
        "FC_REDIS_URL": redis.url,
        "FC_BEAT": "1",
    }
    try:
        with running_stack(workdir, lambda stack: start_worker(stack, engine), env) as stack:
            yield stack
    finally:
        redis.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_e2e_scenario_on_the_engine(engine_stack: Stack, scenario: str) -> None:
    getattr(scenarios, scenario)(engine_stack)
