"""``make demo``: the example subscription site, the local FlexCharge emulator and a task worker.

Migrates the database, starts the emulator (port 8765), the site
(http://127.0.0.1:8000/) and a ``db_worker``, seeds demo customers (their
cards vaulted at the emulator), runs one renewal run, then prints a summary
while FlexCharge's webhooks rescue or expire the declined renewals. Ctrl-C
(or SIGTERM) stops every process it started.

Environment knobs (all optional):

``DEMO_SITE_PORT`` / ``DEMO_EMULATOR_PORT``
    other ports when 8000 / 8765 are taken.
``DEMO_RESCUE_DELAY`` / ``DEMO_EXPIRE_DELAY``
    seconds until the emulator rescues / expires a declined renewal (20 / 35).
``DEMO_FRESH=1``
    start from an empty SQLite database (deletes ``example_project/db.sqlite3``).

Running it again keeps ``example_project/.env`` and the database: the seed adds
nothing, and the renewal run charges the active subscriptions once more.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
LOGS = HERE.parent / ".demo"
HOST = "127.0.0.1"
DEFAULT_DB = HERE / "db.sqlite3"
SUMMARY_EVERY = 5.0


class DemoError(Exception):
    """Something the user has to fix; printed without a traceback."""


class Stop(BaseException):
    """Raised in the main thread by SIGTERM / SIGHUP, handled like Ctrl-C."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DemoError(f"{name}={raw!r} is not a port number.") from None
    if not 0 < value < 65536:
        raise DemoError(f"{name}={value} is not a port number (1-65535).")
    return value


def _env_delay(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip() or default
    try:
        if float(raw) < 0:
            raise ValueError
    except ValueError:
        raise DemoError(f"{name}={raw!r} must be a number of seconds.") from None
    return raw


@dataclass
class Config:
    site_port: int
    emulator_port: int
    rescue_delay: str
    expire_delay: str
    fresh: bool
    #: What the emulator's control endpoints require (X-Emulator-Token); new each run.
    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)

    @classmethod
    def from_env(cls) -> Config:
        config = cls(
            site_port=_env_int("DEMO_SITE_PORT", 8000),
            emulator_port=_env_int("DEMO_EMULATOR_PORT", 8765),
            # Long enough to see "rescue pending" in the site, short enough to watch it resolve.
            rescue_delay=_env_delay("DEMO_RESCUE_DELAY", "20"),
            expire_delay=_env_delay("DEMO_EXPIRE_DELAY", "35"),
            fresh=os.environ.get("DEMO_FRESH", "").strip().lower() in {"1", "true", "yes"},
        )
        if config.site_port == config.emulator_port:
            raise DemoError("DEMO_SITE_PORT and DEMO_EMULATOR_PORT must differ.")
        return config

    @property
    def site(self) -> str:
        return f"http://{HOST}:{self.site_port}/"

    @property
    def emulator(self) -> str:
        return f"http://{HOST}:{self.emulator_port}/"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    _file: IO[bytes] | None = field(default=None, repr=False)

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").rstrip().splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])


def manage(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "manage.py"), *args]


# --- preflight ------------------------------------------------------------------------------


def check_port(port: int, what: str, variable: str) -> None:
    """Fail with a clear message when something already listens on ``port``.

    SO_REUSEADDR, as the site and the emulator set it, so the sockets a
    previous run left in TIME_WAIT do not count as busy.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((HOST, port))
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise DemoError(f"Cannot use port {port} for {what}: {err}") from None
        raise DemoError(
            f"Port {port} on {HOST} is already in use, so {what} cannot start there.\n"
            "  An earlier `make demo` may still be running, or another server uses it.\n"
            f"  See which program it is:  lsof -nP -iTCP:{port} -sTCP:LISTEN"
            f"   (or: ss -ltnp 'sport = :{port}')\n"
            f"  Stop it, or run the demo on another port:  {variable}={port + 1} make demo"
        ) from None
    finally:
        probe.close()


def check_dependencies() -> None:
    missing = []
    modules = ("django", "environ", "rest_framework", "django_tasks", "django_tasks_db")
    for module in (*modules, "flexcharge_emulator"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise DemoError(
            f"Missing Python packages ({', '.join(missing)}) in {sys.executable}.\n"
            "  Run `make demo` from the repository root: it builds .venv with everything needed\n"
            "  (the emulator is a distribution of its own: pip install -e ./emulator)."
        )


def prepare_env_file() -> None:
    env_file = HERE / ".env"
    if env_file.exists():
        print(f"Using {env_file} (delete it to start again from .env.example).")
        return
    shutil.copy(HERE / ".env.example", env_file)
    print(f"Created {env_file} from .env.example (emulator credentials).")


def demo_environment(config: Config) -> dict[str, str]:
    """The processes' environment: ``.env`` plus what the demo itself needs.

    Variables in the environment win over ``.env`` (see settings.py), so these
    hold even when ``.env`` was edited to point at the FlexCharge sandbox.
    """
    overrides = {
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "FLEXCHARGE_API_URL": f"{config.emulator}v1/",
        # The emulator's webhooks say IsTestMode: true and are signed for 127.0.0.1:PORT.
        "FLEXCHARGE_TEST_MODE": "True",
        "FLEXCHARGE_WEBHOOK_HOST": "",
        # The emulator's control endpoints take this token (read by flexcharge_emulator).
        "FLEXCHARGE_EMULATOR_CONTROL_TOKEN": config.control_token,
    }
    os.environ.update(overrides)
    return dict(os.environ)


def sqlite_path() -> Path | None:
    """The demo database file, when it is the default SQLite one."""
    if os.environ.get("DATABASE_URL"):
        return None
    env_file = HERE / ".env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.strip().startswith("DATABASE_URL=") and line.split("=", 1)[1].strip():
                return None
    return DEFAULT_DB


def run_step(args: list[str], what: str, env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=HERE, env=env, check=False)
    if result.returncode != 0:
        raise DemoError(f"{what} failed (exit code {result.returncode}); see the output above.")


# --- processes ------------------------------------------------------------------------------


def start(name: str, cmd: list[str], log: Path, env: dict[str, str]) -> Process:
    # Its own session (and process group), so Ctrl-C in the terminal reaches
    # only this script, which then stops each group in order.
    handle = log.open("wb")
    popen = subprocess.Popen(
        cmd, cwd=HERE, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Process(name, popen, log, handle)


def stop(procs: list[Process]) -> None:
    """SIGTERM each process group, wait up to 10 s in all, then SIGKILL what is left."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  {proc.name} did not stop in time: killed.")
        # Also reaps anything the leader left behind in its group.
        _signal_group(proc, signal.SIGKILL)
        proc.popen.wait()
        if proc._file is not None:
            proc._file.close()


def _signal_group(proc: Process, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(proc.popen.pid, sig)


def check_alive(procs: list[Process]) -> None:
    for proc in procs:
        if not proc.running():
            raise DemoError(
                f"The {proc.name} stopped (exit code {proc.popen.returncode}). "
                f"End of {proc.log}:\n{proc.tail()}"
            )


def wait_for(url: str, proc: Process, procs: list[Process], timeout: float = 60) -> None:
    """Wait until ``url`` answers without a server error."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        check_alive(procs)
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback only)
                return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return  # it answers: that is all we wait for
            last = f"HTTP {err.code}"
        except OSError as err:
            last = str(err)
        time.sleep(0.3)
    raise DemoError(
        f"The {proc.name} did not answer at {url} within {timeout:.0f} s ({last}). "
        f"End of {proc.log}:\n{proc.tail()}"
    )


@contextmanager
def signals_stop() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the demo (the ``finally`` in ``run`` cleans up)."""

    def _raise(signum: int, frame: Any) -> None:
        raise Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # A shell starts background jobs (`make demo &`) with SIGINT ignored, and
    # Python keeps it so: make `kill -INT` and Ctrl-C stop the demo regardless.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- the summary ----------------------------------------------------------------------------


def setup_django() -> None:
    sys.path.insert(0, str(HERE))
    import django

    django.setup()


def earlier_runs(started: Any) -> str:
    """A note on what an earlier run left in the database, or ""."""
    from django.contrib.auth import get_user_model
    from shop.models import Subscription

    from django_flexcharge.models import FlexChargeOrder

    earlier = FlexChargeOrder.objects.filter(created__lt=started)
    if not earlier.exists():
        return ""
    stuck = earlier.filter(status__in=FlexChargeOrder.UNDER_RESCUE).count()
    customers = get_user_model().objects.filter(username__startswith="demo").count()
    past_due = Subscription.objects.filter(status=Subscription.Status.PAST_DUE).count()
    note = (
        f"This database is from an earlier run ({customers} demo customers, "
        f"{earlier.count()} FlexCharge orders); the summary below counts this run only."
    )
    if past_due:
        note += (
            f"\n{past_due} subscriptions are past due (their rescue expired): renewal runs "
            "charge active subscriptions only, so they are not renewed again."
        )
    if stuck:
        note += (
            f"\n{stuck} earlier orders are still pending: the emulator that held them has "
            "stopped (it keeps orders in memory), so no webhook will settle them, and their "
            "subscriptions are skipped by renewal runs."
        )
    return note + "\nDEMO_FRESH=1 make demo starts from an empty database."


def summary(started: Any) -> tuple[str, int, int]:
    """One status line for this run, the orders handed over, and how many are settled."""
    from django.db import connection
    from django.db.models import Count

    from django_flexcharge.models import FlexChargeOrder, Transmission, WebhookEvent

    orders = FlexChargeOrder.objects.filter(created__gte=started)
    counts = dict(orders.values_list("status").annotate(n=Count("id")).order_by())
    handed = sum(counts.values())
    waiting = counts.get("queued", 0) + counts.get("pending", 0)
    sent = Transmission.objects.filter(created__gte=started, status="sent").count()
    webhooks = WebhookEvent.objects.filter(received_at__gte=started).count()
    connection.close()  # hold no SQLite handle between lines
    line = (
        f"approvals copied {sent:>3} | declines handed to FlexCharge {handed:>3} | "
        f"queued {counts.get('queued', 0):>3} | pending {counts.get('pending', 0):>3} | "
        f"rescued {counts.get('approved', 0):>3} | expired {counts.get('expired', 0):>3} | "
        f"declined {counts.get('declined', 0):>3} | webhooks {webhooks:>3}"
    )
    if counts.get("failed"):
        line += f" | not handed over (failed) {counts['failed']:>3}"
    return line, handed, handed - waiting


def refused_deliveries(config: Config) -> tuple[int, str]:
    """Webhook attempts the site did not accept (non-2xx or no answer), and the last reason."""
    from django_flexcharge.testing import EmulatorControl

    try:
        control = EmulatorControl(config.emulator, config.control_token, timeout=2)
        deliveries = control.state().get("deliveries", [])
    except (OSError, ValueError):  # requests' errors are OSErrors
        return 0, ""
    refused = [
        d for d in deliveries if not (isinstance(d.get("status"), int) and d["status"] < 300)
    ]
    if not refused:
        return 0, ""
    last = refused[-1]
    reason = (
        f"HTTP {last['status']}" if last.get("status") else str(last.get("error") or "no answer")
    )
    return len(refused), f"{last.get('event')} {last.get('external_order_id')}: {reason}"


def set_faults(config: Config, **knobs: Any) -> None:
    """Switch the emulator's fault injection (``/_emulator/faults``) to ``knobs``."""
    from django_flexcharge.testing import EmulatorControl

    control = EmulatorControl(config.emulator, config.control_token, timeout=5)
    control.post("faults", json=knobs).raise_for_status()


# --- main -----------------------------------------------------------------------------------


def run(config: Config) -> None:
    check_dependencies()
    check_port(config.site_port, "the example site", "DEMO_SITE_PORT")
    check_port(config.emulator_port, "the FlexCharge emulator", "DEMO_EMULATOR_PORT")
    prepare_env_file()
    env = demo_environment(config)
    database = sqlite_path()
    if config.fresh and database is not None and database.exists():
        database.unlink()
        print(f"DEMO_FRESH: deleted {database}.")
    LOGS.mkdir(exist_ok=True)

    print("Migrating the database...")
    run_step(manage("migrate", "--noinput", "-v", "0"), "manage.py migrate", env)
    setup_django()
    from django.utils import timezone

    started = timezone.now()
    note = earlier_runs(started)
    if note:
        print(note)

    procs: list[Process] = []
    try:
        emulator = start(
            "FlexCharge emulator",
            manage(
                "flexcharge_emulator",
                "--port",
                str(config.emulator_port),
                "--webhook-url",
                f"{config.site}flexcharge/webhook/",
                "--rescue-delay",
                config.rescue_delay,
                "--expire-delay",
                config.expire_delay,
            ),
            LOGS / "emulator.log",
            env,
        )
        procs.append(emulator)
        site = start(
            "example site",
            manage("runserver", f"{HOST}:{config.site_port}", "--noreload"),
            LOGS / "site.log",
            env,
        )
        procs.append(site)
        procs.append(
            start(
                "task worker",
                manage("db_worker", "--interval", "0.2", "--no-reload", "--no-startup-delay"),
                LOGS / "worker.log",
                env,
            )
        )
        print(f"Starting the emulator, the site and the task worker (logs in {LOGS}/)...")
        wait_for(f"{config.emulator}_emulator/state", emulator, procs)
        wait_for(config.site, site, procs)

        print("\nSeeding demo customers (cards vaulted at the emulator):")
        run_step(manage("seed_demo"), "manage.py seed_demo", env)
        # The first three /evaluate calls get a 503, so some orders' timelines in the
        # admin show a failed attempt and its retry (same idempotency key).
        set_faults(config, error_rate=1.0, error_codes=[503], paths=["evaluate"], times=3)
        print("\nRenewal run (declines go to FlexCharge for rescue):")
        run_step(manage("renew_subscriptions", "--all"), "manage.py renew_subscriptions", env)

        print(
            f"\nThe site:     {config.site}  (log in as demo02 / demo, or admin / admin)\n"
            f"The admin:    {config.site}admin/django_flexcharge/flexchargeorder/\n"
            f"The emulator: curl -H 'X-Emulator-Token: {config.control_token}' "
            f"{config.emulator}_emulator/state\n"
            f"Rescues arrive by signed webhook after {config.rescue_delay} s, expiries after "
            f"{config.expire_delay} s. Ctrl-C stops everything.\n"
        )
        settled_reported = False
        refused_reported = 0
        while True:
            check_alive(procs)
            line, handed, settled = summary(started)
            print(time.strftime("%H:%M:%S"), line, flush=True)
            refused, last = refused_deliveries(config)
            if refused > refused_reported:
                refused_reported = refused
                print(
                    f"  ! {refused} webhook deliveries refused by the site so far (last: {last}); "
                    f"the emulator retries them. Why: {LOGS / 'site.log'}, and the admin's "
                    "Webhook events (status failed, with the error). docs/troubleshooting.md "
                    "explains each answer.",
                    flush=True,
                )
            if handed and settled == handed and not settled_reported:
                settled_reported = True
                print(
                    f"All {handed} declines are settled. The site keeps running: open "
                    f"{config.site}account/ or the admin. Ctrl-C stops everything.",
                    flush=True,
                )
            time.sleep(SUMMARY_EVERY)
    except (KeyboardInterrupt, Stop):
        print("\nStopping...", flush=True)
    finally:
        # A second Ctrl-C (or SIGTERM) must not leave processes behind half-way through.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if procs:
            stop(procs)
            print(f"Stopped the {', the '.join(p.name for p in procs)}.", flush=True)


def main() -> int:
    try:
        with signals_stop():
            run(Config.from_env())
    except DemoError as err:
        print(f"\nmake demo: {err}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        print("\nStopped.")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
