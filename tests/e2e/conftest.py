"""The end-to-end stack: the example site, a task worker and the FlexCharge emulator.

One stack per test session:

* the example site (``example_project``) served by ``manage.py runserver
  --noreload`` on a free 127.0.0.1 port, DEBUG off;
* a real ``manage.py db_worker``, which sends ``/transmit`` and ``/evaluate``;
* the emulator in this process (``Emulator``), on another free port, its
  webhooks signed for and sent to the site. Declines the emulator would rescue
  wait for ``emu.approve()`` (``rescue_delay=None``), so a test can see them
  pending; declines it will not rescue expire on their own after
  ``EXPIRE_DELAY`` seconds, as in ``make demo``;
* a fresh SQLite file in a temporary directory.

The processes get no ``.env``: every variable ``example_project/settings.py``
reads is set here (a setting added there without being added here fails the
session), and nothing else from the developer's environment is passed on
beyond PATH, HOME and the locale. Each process runs in its own process group,
stopped (SIGTERM, then SIGKILL) when the session ends.

Tests read the site's database directly (``sqlite3``, read-only) and steer the
emulator through its Python API; everything else goes over HTTP as a browser
or FlexCharge would send it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest
import requests

from flexcharge_emulator import Emulator, EmulatorConfig

from .stack import ADMIN, EXPIRE_DELAY, HOST, PASSWORD, PLAN, PLAN_PRICE, Stack, free_port


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("e2e")
    site_port = free_port()
    emulator = Emulator(
        EmulatorConfig(
            webhook_url=f"http://{HOST}:{site_port}/flexcharge/webhook/",
            rescue_delay=None,
            expire_delay=EXPIRE_DELAY,
            webhook_backoff=0.2,
        )
    ).start()
    stack = Stack(workdir, emulator, site_port)
    # A CI timeout sends SIGTERM: end the session like Ctrl-C, so the
    # finalizer below still stops the site and the worker.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.manage("migrate", "--noinput", "-v", "0")
        stack.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model\n"
            "from shop.models import Plan\n"
            f"Plan.objects.create(slug={PLAN!r}, name='Basic', price={PLAN_PRICE})\n"
            f"get_user_model().objects.create_superuser({ADMIN!r}, 'admin@example.com', "
            f"{PASSWORD!r})\n",
        )
        stack.start("site", "runserver", f"{HOST}:{site_port}", "--noreload")
        stack.start(
            "worker", "db_worker", "--interval", "0.05", "--no-reload", "--no-startup-delay"
        )

        def site_answers() -> bool:
            with suppress(requests.ConnectionError):
                return requests.get(stack.url + "/login/", timeout=2).status_code == 200
            return False

        stack.wait(site_answers, f"the site at {stack.url}", timeout=30)
        yield stack
    finally:
        stack.stop()
        emulator.stop()
        signal.signal(signal.SIGTERM, previous)
    leftovers = [proc.name for proc in stack.processes if proc.popen.poll() is None]
    assert not leftovers, f"still running after the session: {leftovers}"
