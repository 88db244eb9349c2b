"""The example site in a subprocess, and a local stand-in for FlexCharge's SenseJS widget.

The browser tests' own process runs under ``tests.settings``, which has no
``shop`` app, so the checkout test runs the real example site instead:
``python -m tests.browser.example_site 127.0.0.1:PORT`` migrates a fresh
SQLite file, adds two plans and a customer, and serves the site with
``runserver`` (no reloader; static files served, DEBUG on). Its settings come
from the environment exactly as in a deployment (``example_project/settings.py``),
so ``FLEXCHARGE_API_URL`` points it at an emulator the test runs in-process and
``FLEXCHARGE_SENSEJS_URL`` at ``SenseJSStub``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PROJECT = REPO / "example_project"
STUB_SCRIPT = Path(__file__).with_name("stub_sensejs.js")

CUSTOMER = {"username": "jane", "password": "browser-test-pw", "email": "jane@example.com"}
PLANS = (("basic", "Basic", 999), ("pro", "Pro", 1999))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SenseJSStub:
    """Serves ``stub_sensejs.js`` at ``/widget.js`` on 127.0.0.1 and records every request.

    A different origin from the site, as FlexCharge's widget host is.
    """

    def __init__(self) -> None:
        #: Paths of the GET requests it received.
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append(self.path)
                if self.path.split("?")[0] != "/widget.js":
                    self.send_error(404)
                    return
                body = STUB_SCRIPT.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/widget.js"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ExampleSite:
    """``runserver`` of the example project on a free port, with its own SQLite file."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "example-site.log"
        full_env = {
            **os.environ,
            # pytest-django exported tests.settings; manage.py would only setdefault it.
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DJANGO_SECRET_KEY": "browser-tests-only",
            "DJANGO_DEBUG": "True",  # runserver serves the static files (sensejs.js)
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite:///{workdir / 'example.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        full_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.example_site", f"127.0.0.1:{self.port}"],
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the example site exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/login/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the example site did not answer in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


def main(addr: str) -> None:
    """In the subprocess: a fresh database, the test's plans and customer, then runserver."""
    sys.path.insert(0, str(EXAMPLE_PROJECT))  # as manage.py would: the settings package
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from shop.models import Plan

    call_command("migrate", interactive=False, verbosity=0)
    for slug, name, price in PLANS:
        Plan.objects.get_or_create(slug=slug, defaults={"name": name, "price": price})
    get_user_model().objects.create_user(**CUSTOMER, first_name="Jane", last_name="Doe")
    call_command("runserver", addr, use_reloader=False, skip_checks=True)


if __name__ == "__main__":
    main(sys.argv[1])
