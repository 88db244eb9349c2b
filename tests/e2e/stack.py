"""The end-to-end stack: the example site, a task worker and the FlexCharge emulator.

``Stack`` runs the processes and offers what the tests do as a user would
(sign up, check out, log in to the admin and run an action through its
forms), plus read-only access to the site's SQLite file and the in-process
emulator. ``conftest.py`` builds one per session; see its docstring.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import pytest
import requests

from flexcharge_emulator import Emulator, EmulatorConfig
from flexcharge_emulator.config import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    DEFAULT_MID,
    DEFAULT_SITE_ID,
    DEFAULT_SUBSCRIBER_KEY,
    DEFAULT_TOKENIZATION_KEY,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_project"
HOST = "127.0.0.1"
PASSWORD = "e2e-Long-Passw0rd"
ADMIN = "e2e-admin"
PLAN = "basic"
PLAN_PRICE = 999
#: Seconds until the emulator expires a decline it will not rescue.
EXPIRE_DELAY = 1.0
#: Longest wait for anything asynchronous (worker, webhook); polls every 50 ms.
TIMEOUT = 15.0

T = TypeVar("T")


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], T | None], what: str, timeout: float = TIMEOUT, on_fail: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}.{on_fail}")
        time.sleep(0.05)


# --- HTML forms, read as a browser would submit them ----------------------------------------


@dataclass
class Field:
    name: str
    type: str
    value: str
    checked: bool = False


@dataclass
class HtmlForm:
    id: str
    action: str
    fields: list[Field] = field(default_factory=list)

    def target(self, page_url: str) -> str:
        """Where the browser posts it: ``action`` resolved against the page, or the page."""
        return urljoin(page_url, self.action) if self.action else page_url

    def names(self) -> set[str]:
        return {f.name for f in self.fields}

    def values(self, name: str) -> list[str]:
        return [f.value for f in self.fields if f.name == name]

    def data(self, submit: str | None = None, **overrides: str) -> list[tuple[str, str]]:
        """What a browser sends: hidden, text and selected values, checked boxes, one submit.

        ``overrides`` replace the value of a field (for radios and checkboxes:
        check the one with that value); ``submit`` names the button pressed.
        """
        missing = set(overrides) - self.names()
        if submit is not None:
            missing |= {submit} - self.names()
        assert not missing, f"form {self.id or self.action!r} has no field {sorted(missing)}"
        sent: list[tuple[str, str]] = []
        done: set[str] = set()
        for f in self.fields:
            if f.type in ("submit", "button", "image", "reset", "file"):
                if f.name == submit:
                    sent.append((f.name, f.value))
                continue
            if f.name in overrides:
                if f.name not in done:
                    sent.append((f.name, overrides[f.name]))
                    done.add(f.name)
                continue
            if f.type in ("checkbox", "radio") and not f.checked:
                continue
            sent.append((f.name, f.value))
        return sent


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self._form: HtmlForm | None = None
        self._select: Field | None = None
        self._options = 0
        self._selected = False
        self._textarea: Field | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._form = HtmlForm(a.get("id", ""), a.get("action", ""))
            self.forms.append(self._form)
            return
        if self._form is None or (not a.get("name") and tag != "option"):
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            default = "on" if kind in ("checkbox", "radio") else ""
            self._form.fields.append(
                Field(a["name"], kind, a.get("value", default), "checked" in a)
            )
        elif tag == "button":
            self._form.fields.append(Field(a["name"], a.get("type", "submit"), a.get("value", "")))
        elif tag == "select":
            self._select, self._options, self._selected = Field(a["name"], "select", ""), 0, False
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            # The selected option, else the first one, as a browser submits.
            if "selected" in a and not self._selected:
                self._select.value, self._selected = a.get("value", ""), True
            elif self._options == 0 and not self._selected:
                self._select.value = a.get("value", "")
            self._options += 1
        elif tag == "textarea":
            self._textarea = Field(a["name"], "textarea", "")
            self._form.fields.append(self._textarea)

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_with(html: str, field_name: str) -> HtmlForm:
    """The one form of the page that has a field named ``field_name``."""
    parser = _FormParser()
    parser.feed(html)
    found = [form for form in parser.forms if field_name in form.names()]
    assert len(found) == 1, f"expected one form with {field_name!r}, found {len(found)}"
    return found[0]


def page_messages(html: str) -> list[str]:
    """The texts of Django's messages framework on a page (the admin's and the shop's)."""
    block = re.search(r'<ul class="messagelist">(.*?)</ul>', html, re.S)
    items = re.findall(r"<li[^>]*>(.*?)</li>", block.group(1), re.S) if block else []
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", item)).strip() for item in items]


# --- the processes --------------------------------------------------------------------------


def settings_variables() -> set[str]:
    """Every environment variable ``example_project/settings.py`` reads through ``env``."""
    source = (EXAMPLE / "example_project" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', source))


def site_environment(database: Path, api_url: str, static_root: Path) -> dict[str, str]:
    # PYTHONPATH: a checkout's own package, not whatever an editable install points at.
    names = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")
    env = {key: os.environ[key] for key in names if key in os.environ}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            # This checkout's app and emulator, not whichever ones the environment has installed.
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "emulator")]),
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DJANGO_SECRET_KEY": "e2e-tests-only-not-secret",
            "DJANGO_DEBUG": "False",
            "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "",
            "DJANGO_STATIC_ROOT": str(static_root),
            "DATABASE_URL": f"sqlite:///{database}",
            "FLEXCHARGE_APP_KEY": DEFAULT_APP_KEY,
            "FLEXCHARGE_APP_SECRET": DEFAULT_APP_SECRET,
            "FLEXCHARGE_MID": DEFAULT_MID,
            "FLEXCHARGE_SITE_ID": DEFAULT_SITE_ID,
            "FLEXCHARGE_TOKENIZATION_KEY": DEFAULT_TOKENIZATION_KEY,
            "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": DEFAULT_SUBSCRIBER_KEY,
            "FLEXCHARGE_API_URL": api_url,
            "FLEXCHARGE_SENSEJS_URL": "https://sensejs.flexfactor.io/widget.js",
            "FLEXCHARGE_WEBHOOK_HOST": "",
            "FLEXCHARGE_WEBHOOK_TOLERANCE": "300",
            "FLEXCHARGE_MIT_EXPIRY_DAYS": "21",
            "FLEXCHARGE_DECLINE_MAX_AGE": "24",
            "FLEXCHARGE_TIMEOUT": "3.05,10",
            "FLEXCHARGE_TEST_MODE": "True",
            "DJANGO_LOG_LEVEL": "INFO",
        }
    )
    unset = settings_variables() - env.keys()
    assert not unset, (
        f"example_project/settings.py reads {sorted(unset)}; set them in tests/e2e/stack.py "
        "so the e2e site never falls back to a developer's example_project/.env"
    )
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"\n--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])


def stop_process(proc: Process, timeout: float = 10) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    with suppress(ProcessLookupError):
        os.killpg(proc.popen.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.popen.wait(timeout=timeout)
    with suppress(ProcessLookupError):
        os.killpg(proc.popen.pid, signal.SIGKILL)
    proc.popen.wait(timeout=5)


@dataclass
class Customer:
    username: str
    http: requests.Session
    subscription_id: int
    checkout_order_id: str


class Stack:
    def __init__(self, workdir: Path, emulator: Emulator, site_port: int) -> None:
        self.workdir = workdir
        self.emu = emulator
        self.url = f"http://{HOST}:{site_port}"
        self.database = workdir / "site.sqlite3"
        self.env = site_environment(self.database, emulator.base_url, workdir / "static")
        self.processes: list[Process] = []
        self._users = 0

    # -- processes

    def manage(self, *args: str) -> str:
        """Run a management command to completion; its stdout."""
        result = subprocess.run(
            [sys.executable, str(EXAMPLE / "manage.py"), *args],
            cwd=EXAMPLE,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (
            f"manage.py {args[0]} failed:\n{result.stdout}{result.stderr}"
        )
        return result.stdout

    def start(self, name: str, *args: str) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, str(EXAMPLE / "manage.py"), *args],
                cwd=EXAMPLE,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped as one, never by Ctrl-C here
            )
        proc = Process(name, popen, log)
        self.processes.append(proc)
        return proc

    def logs(self) -> str:
        return "".join(proc.tail() for proc in self.processes)

    def check_running(self) -> None:
        for proc in self.processes:
            if proc.popen.poll() is not None:
                pytest.fail(f"the {proc.name} exited ({proc.popen.returncode}):{proc.tail()}")

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = TIMEOUT) -> T:
        def probe() -> T | None:
            self.check_running()
            return check()

        return wait_until(probe, what, timeout, on_fail=self.logs())

    def stop(self) -> None:
        for proc in self.processes:
            stop_process(proc)

    # -- the database (read-only)

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        uri = f"file:{self.database}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params).fetchall()]

    def one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        rows = self.query(sql, *params)
        assert len(rows) <= 1, f"{sql} matched {len(rows)} rows"
        return rows[0] if rows else None

    def order(self, order_id: str) -> dict[str, Any] | None:
        return self.one(
            "SELECT * FROM django_flexcharge_flexchargeorder WHERE order_id = ?", order_id
        )

    def subscription(self, pk: int) -> dict[str, Any]:
        row = self.one("SELECT * FROM shop_subscription WHERE id = ?", pk)
        assert row is not None
        return row

    def subscription_in(self, pk: int, *statuses: str) -> dict[str, Any] | None:
        row = self.subscription(pk)
        return row if row["status"] in statuses else None

    def charge(self, order_id: str) -> dict[str, Any]:
        row = self.one("SELECT * FROM shop_charge WHERE order_id = ?", order_id)
        assert row is not None
        return row

    def order_in(self, order_id: str, *statuses: str) -> dict[str, Any] | None:
        row = self.order(order_id)
        return row if row is not None and row["status"] in statuses else None

    def webhook_events(self, order_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT event, status, error, is_resent FROM django_flexcharge_webhookevent "
            "WHERE external_order_id = ? ORDER BY id",
            order_id,
        )

    # -- the emulator

    def transmit(self, order_id: str) -> dict[str, Any] | None:
        """The ``/transmit`` body the emulator received for ``order_id``, if any."""
        with self.emu.state.lock:
            return next((t for t in self.emu.state.transmits if t.get("orderId") == order_id), None)

    def emulator_records(self, kind: str, session_key: str) -> list[dict[str, Any]]:
        """``emu.state.refunds`` / ``cancels`` entries for one FlexCharge order."""
        with self.emu.state.lock:
            return [dict(r) for r in getattr(self.emu.state, kind) if r["order_id"] == session_key]

    # -- the site, as its users see it

    def session(self) -> requests.Session:
        http = requests.Session()
        http.headers["User-Agent"] = "django-flexcharge e2e"
        return http

    def post_form(
        self, http: requests.Session, url: str, field_name: str, **values: str
    ) -> requests.Response:
        """GET ``url``, fill the form that has ``field_name`` with ``values``, submit it."""
        page = http.get(self.url + url, timeout=10)
        assert page.status_code == 200, f"GET {url}: {page.status_code}"
        form = form_with(page.text, field_name)
        return http.post(form.target(page.url), data=form.data(**values), timeout=30)

    def sign_up(self) -> tuple[str, requests.Session]:
        self._users += 1
        username = f"e2e-customer-{self._users:02d}"
        http = self.session()
        answer = self.post_form(
            http,
            "/signup/",
            "username",
            username=username,
            email=f"{username}@example.com",
            password1=PASSWORD,
            password2=PASSWORD,
        )
        assert answer.status_code == 200, answer.status_code
        assert answer.history, f"sign-up did not redirect: {page_messages(answer.text)}"
        return username, http

    def checkout(self, http: requests.Session, card_number: str) -> requests.Response:
        return self.post_form(
            http,
            f"/checkout/{PLAN}/",
            "card_number",
            first_name="Jane",
            last_name="Doe",
            card_number=card_number,
            exp_month="9",
            exp_year=str(time.gmtime().tm_year + 3),
            cvv="737",
            address_line1="123 Main St.",
            city="San Francisco",
            state="CA",
            zipcode="94111",
            country_code="US",
            phone="+15551234567",
        )

    def subscribe(self, card_number: str) -> Customer:
        """A new customer who signs up and checks out with ``card_number`` (approved)."""
        username, http = self.sign_up()
        answer = self.checkout(http, card_number)
        assert answer.url == self.url + "/account/", page_messages(answer.text) or answer.text
        row = self.one(
            "SELECT s.id, c.order_id FROM shop_subscription s "
            "JOIN auth_user u ON u.id = s.user_id JOIN shop_charge c ON c.subscription_id = s.id "
            "WHERE u.username = ?",
            username,
        )
        assert row is not None, f"no subscription for {username}"
        return Customer(username, http, row["id"], row["order_id"])

    def renew(self, customer: Customer) -> tuple[str, str]:
        """Run one renewal of the customer's subscription, as the renewal command does."""
        script = (
            "from shop.billing import renew\n"
            "from shop.models import Subscription\n"
            f"sub = Subscription.objects.get(pk={customer.subscription_id})\n"
            "outcome = renew(sub)\n"
            "print(outcome.value, sub.latest_charge().order_id)\n"
        )
        outcome, order_id = self.manage("shell", "-c", script).split()[-2:]
        return outcome, order_id

    def declined_renewal(self, card_number: str) -> tuple[Customer, dict[str, Any]]:
        """A customer whose renewal declined and is now pending at FlexCharge."""
        customer = self.subscribe(card_number)
        outcome, order_id = self.renew(customer)
        assert outcome == "rescue_pending"
        order = self.wait(
            lambda: self.order_in(order_id, "pending"), f"order {order_id} to become pending"
        )
        return customer, order

    def admin(self) -> requests.Session:
        """A staff superuser logged in through the admin's login form."""
        http = self.session()
        answer = self.post_form(
            http, "/admin/login/?next=/admin/", "username", username=ADMIN, password=PASSWORD
        )
        assert answer.url == self.url + "/admin/", "admin login failed"
        return http

    def admin_action(
        self, http: requests.Session, order_id: str, action: str
    ) -> tuple[HtmlForm, str]:
        """Select the order in the changelist, run ``action``; the intermediate page's form."""
        page = http.get(
            self.url + "/admin/django_flexcharge/flexchargeorder/",
            params={"q": order_id},
            timeout=10,
        )
        assert page.status_code == 200
        changelist = form_with(page.text, "_selected_action")
        pks = changelist.values("_selected_action")
        assert len(pks) == 1, f"searching {order_id} listed {len(pks)} orders"
        answer = http.post(
            changelist.target(page.url),
            data=changelist.data(submit="index", action=action, _selected_action=pks[0]),
            timeout=30,
        )
        assert answer.status_code == 200, answer.status_code
        confirm = form_with(answer.text, "apply")
        return confirm, confirm.target(answer.url)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def running_stack(
    workdir: Path,
    start_worker: Callable[[Stack], object],
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The emulator, the migrated and seeded example site and a worker, stopped on exit.

    ``start_worker`` starts the task worker (``db_worker``, or an RQ/Celery
    worker); ``env`` adds to the site's environment (another settings module).
    """
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
    stack.env.update(env or {})
    # A CI timeout sends SIGTERM: end the session like Ctrl-C, so the
    # finally below still stops the site and the worker.
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
        start_worker(stack)

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
