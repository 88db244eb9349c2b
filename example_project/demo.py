"""``make demo``: the example subscription site, the local FlexCharge emulator and a task worker.

Migrates SQLite, creates the admin user, starts the emulator (port 8765), the
site (http://127.0.0.1:8000/) and a ``db_worker``, seeds demo customers (their
cards vaulted at the emulator), runs a renewal run, then keeps printing a
summary while FlexCharge's webhooks arrive. Ctrl-C stops every process it
started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SITE = "http://127.0.0.1:8000/"
EMULATOR = "http://127.0.0.1:8765/"
# Long enough to see "rescue pending" in the site, short enough to watch it resolve.
RESCUE_DELAY = os.environ.get("DEMO_RESCUE_DELAY", "20")
EXPIRE_DELAY = os.environ.get("DEMO_EXPIRE_DELAY", "35")


def manage(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "manage.py"), *args]


def wait_for(url: str, name: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{name}: a process exited early ({proc.args[2:4]})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback only)
                return
        except urllib.error.HTTPError:
            return  # it answers: that is all we wait for
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{name} did not answer at {url} within {timeout:.0f}s")


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    # Own process group, so Ctrl-C handling here stops it and its children.
    return subprocess.Popen(
        cmd,
        cwd=HERE,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def summary() -> str:
    from django.db.models import Count

    from django_flexcharge.models import FlexChargeOrder, Transmission, WebhookEvent

    counts = dict(FlexChargeOrder.objects.values_list("status").annotate(n=Count("id")).order_by())
    handed = sum(counts.values())
    return (
        f"transmitted approvals {Transmission.objects.filter(status='sent').count():>3} | "
        f"declines handed to FlexCharge {handed:>3} | "
        f"pending {counts.get('pending', 0) + counts.get('queued', 0):>3} | "
        f"rescued {counts.get('approved', 0):>3} | expired {counts.get('expired', 0):>3} | "
        f"declined {counts.get('declined', 0):>3} | webhooks {WebhookEvent.objects.count():>3}"
    )


def main() -> None:
    env_file = HERE / ".env"
    if not env_file.exists():
        shutil.copy(HERE / ".env.example", env_file)
        print(f"Created {env_file} from .env.example (emulator credentials).")
    logs = HERE.parent / ".demo"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    subprocess.run(manage("migrate", "--noinput", "-v", "0"), cwd=HERE, env=env, check=True)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            start(
                manage(
                    "flexcharge_emulator",
                    "--port",
                    "8765",
                    "--webhook-url",
                    SITE + "flexcharge/webhook/",
                    "--rescue-delay",
                    RESCUE_DELAY,
                    "--expire-delay",
                    EXPIRE_DELAY,
                ),
                logs / "emulator.log",
                env,
            )
        )
        procs.append(
            start(manage("runserver", "127.0.0.1:8000", "--noreload"), logs / "site.log", env)
        )
        procs.append(
            start(
                manage("db_worker", "--interval", "0.2", "--no-reload", "--no-startup-delay"),
                logs / "worker.log",
                env,
            )
        )
        wait_for(EMULATOR + "_emulator/state", "the emulator", procs)
        wait_for(SITE, "the example site", procs)
        subprocess.run(manage("seed_demo"), cwd=HERE, env=env, check=True)
        print("\nRenewal run (declines go to FlexCharge for rescue):")
        subprocess.run(manage("renew_subscriptions", "--all"), cwd=HERE, env=env, check=True)

        sys.path.insert(0, str(HERE))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
        import django

        django.setup()
        print(
            f"\nThe site: {SITE}  (admin: {SITE}admin/, user admin / password admin)\n"
            f"The emulator: {EMULATOR}_emulator/state   logs: {logs}/\n"
            "Rescues arrive by signed webhook as the emulator resolves them. Ctrl-C stops all.\n"
        )
        while True:
            print(time.strftime("%H:%M:%S"), summary(), flush=True)
            for proc in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"a process stopped: {proc.args}; see {logs}/")
            time.sleep(5)
    except KeyboardInterrupt:
        print("\nStopping the emulator, the site and the worker...")
    finally:
        stop(procs)


if __name__ == "__main__":
    main()
