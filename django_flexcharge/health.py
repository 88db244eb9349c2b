"""Is the integration healthy? One report for the JSON view, the health-check plugin and cron.

``collect()`` reads five facts, each one cheap query or cache read:

- the oldest queued row's age (orders waiting for ``/evaluate``, transmissions
  for ``/transmit``): a growing age means no worker runs or every call fails;
- rows past their retry budget: queued transmissions with ``FLEXCHARGE_MAX_ATTEMPTS``
  spent, queued orders whose same-day window has closed; each needs a person;
- the last webhook received (silence is normal on a quiet site, so it is
  only a problem when ``FLEXCHARGE_HEALTH_WEBHOOK_SILENCE`` is set);
- signature refusals in the last hour (a wrong subscriber key, a proxy that
  changes the host, or someone probing the endpoint), counted in the cache in
  one-minute buckets by the webhook view, never in the database, so a flood of
  forged deliveries costs no writes;
- the token endpoint's last answer (anything but 2xx: credentials refused).

``problems`` lists what is wrong in words; the report is healthy without any.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Min, Q
from django.utils import timezone

from . import telemetry
from .conf import conf
from .models import FlexChargeOrder, Transmission, WebhookEvent

REFUSALS_KEY = "django_flexcharge:health:refusals:{}"


def _minute(now: float | None = None) -> int:
    return int((now if now is not None else time.time()) // 60)


def note_signature_refusal() -> None:
    """Count one refused webhook signature in this minute's bucket (kept a little over an hour)."""
    key = REFUSALS_KEY.format(_minute())
    try:
        cache.add(key, 0, timeout=3700)
        cache.incr(key)
    except Exception:  # the cache being down must not turn a 401 into a 500
        return


def signature_refusals_last_hour(now: float | None = None) -> int:
    current = _minute(now)
    keys = [REFUSALS_KEY.format(current - i) for i in range(60)]
    try:
        return sum(int(v) for v in cache.get_many(keys).values())
    except Exception:
        return 0


def _age(then: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def collect(now: dt.datetime | None = None, *, account: str | None = None) -> dict[str, Any]:
    """The health report: facts, and ``problems`` in words (empty when healthy).

    ``account`` narrows the rows (queue, retry budget, last webhook) to one
    account; signature refusals and the token endpoint's answer are the site's.
    """
    now = now or timezone.now()
    mine = Q() if account is None else Q(account=account)
    window = dt.timedelta(hours=conf.DECLINE_MAX_AGE)
    orders = FlexChargeOrder.objects.filter(mine, status=FlexChargeOrder.Status.QUEUED).aggregate(
        oldest=Min("created"), stuck=Count("pk", filter=Q(declined_at__lt=now - window))
    )
    transmissions = Transmission.objects.filter(mine, status=Transmission.Status.QUEUED).aggregate(
        oldest=Min("created"), stuck=Count("pk", filter=Q(attempts__gte=conf.MAX_ATTEMPTS))
    )
    over_budget_orders, over_budget_transmissions = orders["stuck"], transmissions["stuck"]
    last_webhook = (
        WebhookEvent.objects.filter(mine)
        .order_by("-received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    order_age = _age(orders["oldest"], now)
    transmission_age = _age(transmissions["oldest"], now)
    ages = [a for a in (order_age, transmission_age) if a is not None]
    oldest = max(ages) if ages else None
    refusals = signature_refusals_last_hour()
    token = telemetry.last_token_answer()
    if order_age is not None:
        telemetry.record_queue_age(order_age, "evaluate")
    if transmission_age is not None:
        telemetry.record_queue_age(transmission_age, "transmit")

    problems = []
    if oldest is not None and oldest > conf.HEALTH_MAX_QUEUE_AGE:
        problems.append(
            f"a row has waited {oldest:.0f} s in the queue (limit {conf.HEALTH_MAX_QUEUE_AGE:.0f} s):"
            " is a worker running?"
        )
    over_budget = over_budget_orders + over_budget_transmissions
    if over_budget:
        problems.append(
            f"{over_budget} queued row(s) past their retry budget "
            f"({over_budget_orders} order(s) past the same-day window, "
            f"{over_budget_transmissions} transmission(s) after {conf.MAX_ATTEMPTS} attempts)"
        )
    silence = conf.HEALTH_WEBHOOK_SILENCE
    webhook_age = _age(last_webhook, now)
    if silence is not None and (webhook_age is None or webhook_age > silence):
        problems.append(f"no webhook received for more than {silence:.0f} s")
    if refusals > conf.HEALTH_MAX_REFUSALS:
        problems.append(
            f"{refusals} webhook signature refusals in the last hour "
            f"(limit {conf.HEALTH_MAX_REFUSALS}): check FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS"
        )
    token_status = token.get("status") if token else None
    if token and not (isinstance(token_status, int) and 200 <= token_status < 300):
        problems.append(
            f"the token endpoint last answered {token_status or token.get('error') or 'nothing'}"
            f" at {token.get('at')}: check FLEXCHARGE_APP_KEY and FLEXCHARGE_APP_SECRET"
        )
    return {
        "healthy": not problems,
        "problems": problems,
        "oldest_queued_age_seconds": oldest,
        "rows_past_retry_budget": over_budget,
        "last_webhook_received_at": last_webhook.isoformat() if last_webhook else None,
        "signature_refusals_last_hour": refusals,
        "token_endpoint_last_answer": token,
        "checked_at": now.isoformat(),
        "account": account,
    }


def lines(report: dict[str, Any]) -> list[str]:
    """The report as text, one fact a line (the management command's output)."""
    token = report["token_endpoint_last_answer"]
    age = report["oldest_queued_age_seconds"]
    out = [
        f"status: {'healthy' if report['healthy'] else 'UNHEALTHY'}",
        f"oldest queued row: {'none queued' if age is None else f'{age:.0f} s old'}",
        f"rows past their retry budget: {report['rows_past_retry_budget']}",
        f"last webhook received: {report['last_webhook_received_at'] or 'never'}",
        f"signature refusals in the last hour: {report['signature_refusals_last_hour']}",
        "token endpoint's last answer: "
        + (
            f"{token.get('status') or token.get('error')} at {token.get('at')}"
            if token
            else "none yet"
        ),
    ]
    out += [f"problem: {problem}" for problem in report["problems"]]
    return out
