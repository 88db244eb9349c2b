"""Sending a claimed ``/transmit`` (a copy of an approved payment) and saving its outcome.

FlexCharge does not deduplicate ``/transmit``: each outcome is saved right after
its call, and a row is resent only when no answer says it arrived (timeout,
connection, 429, 5xx), with the same body, until ``FLEXCHARGE_MAX_ATTEMPTS``.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from .attempts import record_call
from .client import get_client
from .conf import conf
from .delivery import backoff, claim, enqueue_on_commit
from .exceptions import FlexChargeError, describe, may_retry, retry_after
from .models import CallAttempt, Transmission

logger = logging.getLogger("django_flexcharge.tasks")


def send_transmission(transmission_pk: int) -> str:
    """Run one delivery attempt of a queued transmission; returns what happened."""
    now = timezone.now()
    if not claim(Transmission, transmission_pk, now=now):
        return "skipped"
    return deliver_claimed_transmission(Transmission.objects.get(pk=transmission_pk), now)


def deliver_claimed_transmission(
    row: Transmission, now: dt.datetime | None = None, history: list[CallAttempt] | None = None
) -> str:
    """Send a transmission this worker has claimed and save its outcome at once.

    Saved right after the call, one UPDATE: FlexCharge does not deduplicate
    ``/transmit``, so an outcome kept for later would be lost with the worker.
    ``history``: see ``record_call``.
    """
    transmission_pk = row.pk
    if row.attempts > conf.MAX_ATTEMPTS:
        # Only after crashes mid-call: each claim counted an attempt.
        return _fail_transmission(transmission_pk, f"gave up after {conf.MAX_ATTEMPTS} attempts")
    try:
        with record_call(
            endpoint="POST transmit", transmission=row, attempt=row.attempts, history=history
        ):
            data = get_client(row.account).transmit(row.payload)
    except Exception as err:
        if not isinstance(err, FlexChargeError):
            logger.exception("Unexpected error sending /transmit %s", row)
        return _transmission_error(row, err)
    Transmission.objects.filter(pk=transmission_pk, status=Transmission.Status.QUEUED).update(
        status=Transmission.Status.SENT,
        response=data,
        transmit_id=str(data.get("transmitId") or "")[:64],
        sent_at=timezone.now(),
        locked_until=None,
        last_error="",
        updated=timezone.now(),
    )
    return "sent"


def _transmission_error(row: Transmission, err: BaseException) -> str:
    message = describe(err)
    if not may_retry(err):
        return _fail_transmission(row.pk, message)
    if row.attempts >= conf.MAX_ATTEMPTS:
        return _fail_transmission(row.pk, f"{message} (after {row.attempts} attempts)")
    next_at = timezone.now() + backoff(row.attempts, retry_after(err))
    with transaction.atomic():
        Transmission.objects.filter(pk=row.pk, status=Transmission.Status.QUEUED).update(
            next_attempt_at=next_at, locked_until=None, last_error=message, updated=timezone.now()
        )
        # The job that sends it then; tasks imports this module, so imported here.
        from .tasks import deliver_transmission

        enqueue_on_commit(deliver_transmission, row.pk, run_after=next_at)
    logger.warning("%s: attempt %s failed (%s); retrying", row, row.attempts, message)
    return "retry"


def _fail_transmission(pk: int, message: str) -> str:
    Transmission.objects.filter(pk=pk, status=Transmission.Status.QUEUED).update(
        status=Transmission.Status.FAILED,
        locked_until=None,
        last_error=message[:2000],
        updated=timezone.now(),
    )
    logger.error("Transmission %s failed: %s", pk, message)
    return "failed"
