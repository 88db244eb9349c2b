"""``manage.py seed_demo``: plans, demo customers with subscriptions, and the admin user.

Each customer goes through the same checkout path as the site's checkout page
(``shop.billing``): the card is vaulted at the configured FlexCharge API (the
emulator in ``make demo``) while the fake processor authorizes it, and the
approval is copied to FlexCharge. The cards are mixed so that a renewal run
(``renew_subscriptions --all``) gives approvals, rescues and expiries.

Running it again adds nothing: plans and customers that exist are kept.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_flexcharge import types
from django_flexcharge.conf import conf
from shop.billing import authorize_and_vault, record_checkout
from shop.models import InvoiceNumber, Plan
from shop.processor import TEST_CARDS

# Prices avoid cents of .13 and .66: the emulator reads those as "expire" and
# "decline outright" (docs/emulator.md), which would blur the card mix below.
PLANS = [
    ("basic", "Basic", 999, Plan.Interval.MONTHLY, "HD streaming on one screen."),
    ("family", "Family", 1999, Plan.Interval.MONTHLY, "4K on four screens, kids' profiles."),
    ("studio", "Studio", 9900, Plan.Interval.YEARLY, "Everything, billed once a year."),
]

#: Per ten customers: 5 renew fine, 3 decline and are rescued, 2 decline and expire.
CARD_CYCLE = [
    "4111111111111111",
    "4000002760003184",
    "5555555555554444",
    "4000300011112220",
    "4111111111111111",
    "4000002760003184",
    "5555555555554444",
    "4111111111111111",
    "4000002760003184",
    "4000300011112220",
]

FIRST_NAMES = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Radia",
    "Guido",
]
LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Perlman",
    "van Rossum",
]
CITIES = [("San Francisco", "CA", "94111"), ("Austin", "TX", "73301"), ("Boston", "MA", "02108")]

DEMO_PASSWORD = "demo"
ADMIN = ("admin", "admin")


class Command(BaseCommand):
    help = "Create demo plans, customers with vaulted cards and subscriptions, and the admin user."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--customers", type=int, default=30, help="How many (default 30).")

    def handle(self, *args: Any, customers: int = 30, **options: Any) -> None:
        if options["verbosity"] < 2:
            # The app logs each API call at INFO, which suits the worker's log
            # but would bury this command's output; -v 2 shows it.
            logging.getLogger("django_flexcharge").setLevel(logging.WARNING)
        plans = self._plans()
        User = get_user_model()
        added: Counter[str] = Counter()
        kept = 0
        for index in range(customers):
            username = f"demo{index + 1:02d}"
            user = User.objects.filter(username=username).first()
            if user is not None and user.subscriptions.exists():
                kept += 1
                continue
            first, last = FIRST_NAMES[index % 10], LAST_NAMES[index // 10 % 10]
            if user is None:
                user = User.objects.create_user(
                    username,
                    email=f"{username}@example.com",
                    password=DEMO_PASSWORD,
                    first_name=first,
                    last_name=last,
                )
            number = CARD_CYCLE[index % len(CARD_CYCLE)]
            self._subscribe(user, plans[index % len(plans)], number, index)
            added[number] += 1

        self.stdout.write(
            f"Customers: {sum(added.values())} subscribed now, {kept} already there "
            f"(log in as demo01...demo{customers:02d}, password {DEMO_PASSWORD!r})."
        )
        for number, count in added.items():
            self.stdout.write(
                f"  {count:>3} x {number[:4]} ... {number[-4:]}  {TEST_CARDS[number].label}"
            )
        self._admin()

    def _plans(self) -> list[Plan]:
        plans = []
        for slug, name, price, interval, description in PLANS:
            plan, created = Plan.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "price": price,
                    "interval": interval,
                    "description": description,
                },
            )
            plans.append(plan)
            if created:
                self.stdout.write(f"Plan {plan} created.")
        return plans

    def _subscribe(self, user: Any, plan: Plan, number: str, index: int) -> None:
        city, state, zipcode = CITIES[index % len(CITIES)]
        billing = {
            "first_name": user.first_name,
            "last_name": user.last_name,
            "address_line1": f"{100 + index} Market Street",
            "address_line2": "",
            "city": city,
            "state": state,
            "zipcode": zipcode,
            "country_code": "US",
            "phone": f"+1555010{index:04d}",
        }
        card = types.Card(
            number=number,
            cvv="123",
            exp_month=(index % 12) + 1,
            exp_year=timezone.now().year + 3,
            first_name=user.first_name,
            last_name=user.last_name,
        )
        order_id = InvoiceNumber.allocate()
        result, vaulted, error = authorize_and_vault(card, user=user, plan=plan, order_id=order_id)
        if error is not None:
            # Without a vaulted card the demo's declines could not be rescued:
            # stop, and leave this customer to be seeded again next run.
            raise CommandError(
                f"FlexCharge at {conf.API_URL} did not vault the card: {error}\n"
                "Is the emulator running? python manage.py flexcharge_emulator --port 8765 "
                "--webhook-url http://127.0.0.1:8000/flexcharge/webhook/"
            )
        record_checkout(
            user=user,
            plan=plan,
            card=card,
            billing=billing,
            order_id=order_id,
            result=result,
            vaulted=vaulted,
        )

    def _admin(self) -> None:
        User = get_user_model()
        username, password = ADMIN
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username, f"{username}@example.com", password)
            self.stdout.write(f"Admin user created: {username} / {password} (log in at /admin/)")
        else:
            self.stdout.write(
                f"Admin user: {username} / {password} unless you changed it (log in at /admin/)"
            )
