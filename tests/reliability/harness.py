"""The fault harness: the emulator as FlexCharge (restartable), seeding, delivery, counting.

Delivery is driven the way a site without a worker drives it: the task runs
once after commit (the Tasks API's immediate backend), then
``manage.py flexcharge_retry --run`` runs again and again until nothing is
queued, waiting for the next due ``next_attempt_at`` in between. Every wait has
a deadline. Counting happens at the emulator: accepted requests per
idempotency key and per merchant ``orderId``, summed over every emulator the
test ran (an outage stops one and starts another on the same port).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from django_flexcharge.delivery import LOST_TASK_GRACE
from django_flexcharge.models import FlexChargeOrder, Transmission, VaultedCard
from django_flexcharge.services import evaluate_declined_payment, transmit_approved_payment
from django_flexcharge.types import BillingAddress, Payer
from flexcharge_emulator import Emulator, EmulatorConfig
from flexcharge_emulator import faults as fault_actions
from tests.conftest import make_payment

QUEUED = "queued"
#: What the app runs with in fault tests: tiny backoff, patience, and a read timeout
#: that a local call never reaches even on a busy machine (a call that timed out
#: after FlexCharge accepted it would be a real, but unplanned, duplicate /transmit).
FAULT_SETTINGS = {
    "FLEXCHARGE_TIMEOUT": (2.0, 5.0),
    "FLEXCHARGE_RETRY_BASE_DELAY": 0.005,
    "FLEXCHARGE_RETRY_MAX_DELAY": 0.05,
    "FLEXCHARGE_MAX_ATTEMPTS": 500,
}


def emulator_config(settings: Any, port: int = 0) -> EmulatorConfig:
    """An emulator that accepts the test settings' credentials and resolves nothing by itself."""
    return EmulatorConfig(
        app_key=settings.FLEXCHARGE_APP_KEY,
        app_secret=settings.FLEXCHARGE_APP_SECRET,
        mid=settings.FLEXCHARGE_MID,
        site_id=settings.FLEXCHARGE_SITE_ID,
        tokenization_key=settings.FLEXCHARGE_TOKENIZATION_KEY,
        subscriber_key=settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS[0],
        webhook_url=None,
        rescue_delay=None,
        expire_delay=None,
        port=port,
    )


def short_path(path: str) -> str:
    """``/v1/orders/x/refund`` -> ``orders``; ``/v1/oauth2/token`` -> ``oauth2``."""
    return path.removeprefix("/v1/").strip("/").split("/")[0].lower()


class FlexCharge:
    """FlexCharge as a fault test sees it: the current emulator plus every earlier one.

    ``stop()`` closes the port (connections are refused) until ``start()``
    opens a new emulator on the same port. Every fault decision is recorded
    per path, so a test knows exactly how many answers were lost.
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.emulators: list[Emulator] = []
        #: (path, action) -> how many requests got that decision.
        self.decisions: Counter[tuple[str, str]] = Counter()
        self.port = 0
        #: Called with (path, decision) for every API request before it is answered.
        self.on_request: Callable[[str, fault_actions.Decision], None] | None = None
        self.start()

    @property
    def current(self) -> Emulator:
        return self.emulators[-1]

    def start(self) -> Emulator:
        emulator = Emulator(emulator_config(self.settings, port=self.port)).start()
        self.port = emulator.port
        decide = emulator.faults.decide

        def recording_decide(path: str) -> fault_actions.Decision:
            decision = decide(path)
            action = decision.action
            if action == fault_actions.PASS and decision.drop_response:
                action = "drop_response"
            self.decisions[(short_path(path), action)] += 1
            if self.on_request is not None:
                self.on_request(short_path(path), decision)
            return decision

        emulator.faults.decide = recording_decide  # type: ignore[method-assign]
        self.emulators.append(emulator)
        self.settings.FLEXCHARGE_API_URL = emulator.base_url
        return emulator

    def stop(self) -> None:
        self.current.stop()

    def close(self) -> None:
        for emulator in self.emulators:
            emulator.stop()

    def set_faults(self, **knobs: Any) -> None:
        self.current.set_faults(**knobs)

    def counts(self, kind: str) -> Counter[str]:
        total: Counter[str] = Counter()
        for emulator in self.emulators:
            total.update(emulator.state.count_by_idempotency_key(kind))
        return total

    def transmits(self) -> Iterator[dict[str, Any]]:
        for emulator in self.emulators:
            with emulator.state.lock:
                yield from list(emulator.state.transmits)

    def injected(self, path: str, action: str) -> int:
        return self.decisions[(path, action)]

    def faults_injected(self) -> dict[str, int]:
        return {
            f"{path} {action}": n
            for (path, action), n in sorted(self.decisions.items())
            if action != fault_actions.PASS
        }


def amount_for(i: int) -> int:
    """Amounts the emulator rescues (its rules expire ``% 100 == 13`` and decline ``== 66``)."""
    amount = 1000 + 7 * i
    while amount % 100 in (13, 66):
        amount += 1
    return amount


def seed(
    prefix: str,
    declines: int,
    approvals: int,
    *,
    card: VaultedCard,
    payer: Payer,
    billing: BillingAddress,
) -> None:
    """Declines (4 in 5 managed MITs -> pending; the rest sync -> approved) and approvals."""
    for i in range(declines):
        evaluate_declined_payment(
            make_payment(f"{prefix}-D{i:04d}", amount=amount_for(i)),
            card=card,
            payer=payer,
            billing=billing,
            is_mit=i % 5 != 0,
        )
    for i in range(approvals):
        transmit_approved_payment(
            make_payment(
                f"{prefix}-A{i:04d}",
                amount=amount_for(i),
                response_code="00",
                response_description="Approved",
            ),
            card=card,
            payer=payer,
            billing=billing,
        )


def age_rows(by: dt.timedelta = LOST_TASK_GRACE * 2) -> None:
    """Make every stored row older, as time passing would: its first task is due for
    ``flexcharge_retry`` (which leaves rows younger than a minute to their own task)."""
    FlexChargeOrder.objects.update(created=F("created") - by)
    Transmission.objects.update(created=F("created") - by)


def queued() -> int:
    return (
        FlexChargeOrder.objects.filter(status=QUEUED).count()
        + Transmission.objects.filter(status=QUEUED).count()
    )


def next_due() -> dt.datetime | None:
    """When the next queued row becomes due (None: nothing is waiting for a time)."""
    times = [
        *FlexChargeOrder.objects.filter(status=QUEUED, next_attempt_at__isnull=False).values_list(
            "next_attempt_at", flat=True
        ),
        *Transmission.objects.filter(status=QUEUED, next_attempt_at__isnull=False).values_list(
            "next_attempt_at", flat=True
        ),
    ]
    return min(times) if times else None


RAN = re.compile(r"Ran (\d+) (evaluations|transmissions)")


def retry_run() -> int:
    """One ``flexcharge_retry --run``; how many rows it sent."""
    out = io.StringIO()
    call_command("flexcharge_retry", "--run", stdout=out)
    return sum(int(n) for n, _ in RAN.findall(out.getvalue()))


@dataclass
class Drive:
    rounds: int = 0
    sends: int = 0
    seconds: float = 0.0


def deliver_all(
    *, deadline: float = 90.0, max_rounds: int | None = None, on_round: Callable | None = None
) -> Drive:
    """Run ``flexcharge_retry --run`` until nothing is queued (or ``max_rounds`` ran).

    Between rounds that sent nothing it waits for the next ``next_attempt_at``
    (never past the deadline): waiting for a known time, not a guessed sleep.
    """
    drive = Drive()
    started = time.monotonic()
    end = started + deadline
    while queued() and (max_rounds is None or drive.rounds < max_rounds):
        if time.monotonic() > end:
            raise AssertionError(
                f"{queued()} rows still queued after {deadline:.0f} s and {drive.rounds} rounds"
            )
        sent = retry_run()
        drive.rounds += 1
        drive.sends += sent
        if on_round is not None:
            on_round(drive)
        if sent == 0:
            due = next_due()
            wait = (due - timezone.now()).total_seconds() if due else 0.005
            time.sleep(min(max(wait, 0.001), 1.5, max(end - time.monotonic(), 0)))
    drive.seconds = time.monotonic() - started
    return drive


def assert_delivered_exactly_once(
    flex: FlexCharge, *, transmit_duplicates: int = 0
) -> dict[str, Any]:
    """Every stored evaluation and transmission reached FlexCharge, once; the figures.

    Evaluations: each idempotency key accepted exactly once, each merchant
    ``orderId`` exactly once (replays of a key are FlexCharge answering an
    earlier request again, not a new order). Transmissions: each key and
    ``orderId`` once, plus exactly ``transmit_duplicates`` extra copies (answers
    the emulator dropped after accepting: ``/transmit`` has no dedupe at FlexCharge).
    """
    orders = list(FlexChargeOrder.objects.values("order_id", "idempotency_key", "status"))
    rows = list(Transmission.objects.values("order_id", "idempotency_key", "status"))
    statuses = Counter(o["status"] for o in orders)
    assert set(statuses) <= {"pending", "approved"}, statuses
    assert Counter(r["status"] for r in rows) == Counter({"sent": len(rows)})

    evaluate = flex.counts("evaluate")
    keys = {str(o["idempotency_key"]) for o in orders}
    assert set(evaluate) - keys == set(), "an /evaluate went out under a key no order has"
    assert evaluate == Counter(dict.fromkeys(keys, 1))
    by_order = flex.counts("evaluate_order_id")
    twice = {order_id: n for order_id, n in by_order.items() if n != 1}
    assert twice == {}, "these invoices reached FlexCharge more than once"
    assert set(by_order) == {o["order_id"] for o in orders}

    transmit = flex.counts("transmit")
    assert set(transmit) == {str(r["idempotency_key"]) for r in rows}
    assert sum(transmit.values()) - len(rows) == transmit_duplicates, transmit.most_common(5)
    transmit_orders = Counter(body.get("orderId") for body in flex.transmits())
    assert set(transmit_orders) == {r["order_id"] for r in rows}
    assert sum(transmit_orders.values()) - len(rows) == transmit_duplicates
    return {
        "orders": len(orders),
        "statuses": dict(statuses),
        "transmissions": len(rows),
        "evaluate_duplicates": sum(n - 1 for n in evaluate.values()),
        "evaluate_replays": sum(flex.counts("evaluate_replay").values()),
        "transmit_duplicates": sum(transmit.values()) - len(rows),
        "faults": flex.faults_injected(),
    }
