"""The queue floor: the least a delivery through ``django_tasks_db`` must do.

``post_evaluate(body)`` carries the stored ``/evaluate`` body in the task's own
arguments and POSTs it with one kept-alive ``requests.Session``: the queue's
claim and result bookkeeping plus the HTTP call, and nothing else (no row of
our own, no lease, no answer applied). Run by a real ``db_worker`` on its own
queue, it separates what the task queue costs from what the package adds.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from django.conf import settings

from django_flexcharge.compat import task

FLOOR_QUEUE = "bench-floor"
_session: requests.Session | None = None


def _authenticated() -> requests.Session:
    global _session
    if _session is None:
        session = requests.Session()
        token = session.post(
            settings.FLEXCHARGE_API_URL + "oauth2/token",
            json={
                "AppKey": settings.FLEXCHARGE_APP_KEY,
                "AppSecret": settings.FLEXCHARGE_APP_SECRET,
            },
            timeout=10,
        ).json()["accessToken"]
        session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        _session = session
    return _session


@task(queue_name=FLOOR_QUEUE)
def post_evaluate(body: dict[str, Any]) -> int:
    url = settings.FLEXCHARGE_API_URL + "evaluate"
    data = json.dumps(body, separators=(",", ":"))
    response = _authenticated().post(url, data=data, timeout=30)
    response.raise_for_status()
    return response.status_code
