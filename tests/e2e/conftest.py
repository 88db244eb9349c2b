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

from collections.abc import Iterator

import pytest

from .stack import Stack, running_stack


def _db_worker(stack: Stack) -> None:
    stack.start("worker", "db_worker", "--interval", "0.05", "--no-reload", "--no-startup-delay")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e"), _db_worker) as stack:
        yield stack
    leftovers = [proc.name for proc in stack.processes if proc.popen.poll() is None]
    assert not leftovers, f"still running after the session: {leftovers}"
