"""The beat entry for ``contrib.celery.drain``: importable from settings (no Celery, no models)."""

from __future__ import annotations

from typing import Any

DRAIN_TASK = "django_flexcharge.drain"


def beat_schedule(every: float = 5.0, *, queue: str | None = None) -> dict[str, dict[str, Any]]:
    """The entry to merge into ``CELERY_BEAT_SCHEDULE`` (``app.conf.beat_schedule``).

    ``expires`` drops a run a busy worker did not start before the next one
    is due, so a backlog of beats never piles up behind an outage.
    """
    options: dict[str, Any] = {"expires": every}
    if queue:
        options["queue"] = queue
    return {"flexcharge-drain": {"task": DRAIN_TASK, "schedule": every, "options": options}}
