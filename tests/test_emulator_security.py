"""The emulator cannot be turned against a site (issue: security item 3).

Its control plane refuses a request without the per-run token, with a wrong
one, from a foreign ``Origin`` (CSRF) or for a foreign ``Host`` (DNS
rebinding); ``manage.py flexcharge_emulator`` never copies a real site's
credentials; the process binds to loopback and prints its token.
"""

from __future__ import annotations

import http.client
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from django_flexcharge.testing import EmulatorControl
from flexcharge_emulator import Emulator, EmulatorConfig
from flexcharge_emulator.config import DEFAULT_SUBSCRIBER_KEY
from flexcharge_emulator.control import TOKEN_ENV, TOKEN_HEADER


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(rescue_delay=None, expire_delay=None)) as emulator:
        yield emulator


def raw(emu: Emulator, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request with exactly these headers (``Host`` too)."""
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def good_headers(emu: Emulator, **extra: str) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{emu.port}", TOKEN_HEADER: emu.config.control_token, **extra}


def test_the_control_plane_answers_a_local_caller_with_the_token(emu: Emulator) -> None:
    assert raw(emu, "GET", "/_emulator/state", good_headers(emu))[0] == 200
    same_origin = good_headers(emu, Origin=f"http://localhost:{emu.port}")
    assert raw(emu, "POST", "/_emulator/reset", same_origin)[0] == 200
    assert EmulatorControl.of(emu).state()["counts"]["orders"] == 0


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({TOKEN_HEADER: None}, 401),  # no token
        ({TOKEN_HEADER: "guessed"}, 401),  # a wrong token
        ({TOKEN_HEADER: ""}, 401),
        ({"Origin": "https://evil.example"}, 403),  # a page elsewhere (CSRF)
        ({"Origin": "null"}, 403),  # a sandboxed frame or a file:// page
        ({"Origin": "http://127.0.0.1:8000"}, 403),  # the site on another port
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Host": "evil.example"}, 403),  # DNS rebinding: evil.example -> 127.0.0.1
        ({"Host": "127.0.0.1.evil.example:8765"}, 403),
        ({"Host": None}, 403),
    ],
)
def test_the_control_plane_refuses_a_request_it_cannot_trust(
    emu: Emulator, change: dict[str, Any], status: int
) -> None:
    headers = good_headers(emu)
    for name, value in change.items():
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    for method, path in (
        ("POST", "/_emulator/faults"),
        ("POST", "/_emulator/reset"),
        ("GET", "/_emulator/state"),
        ("POST", "/_emulator/orders/x/webhooks"),
    ):
        answer, body = raw(emu, method, path, headers)
        assert answer == status, (method, path)
        assert emu.config.control_token.encode() not in body


def test_a_refused_request_changes_nothing(emu: Emulator) -> None:
    emu.set_faults(error_rate=1.0)
    headers = good_headers(emu, Origin="https://evil.example")
    assert raw(emu, "DELETE", "/_emulator/faults", headers)[0] == 403
    assert emu.faults.snapshot()["error_rate"] == 1.0


def test_the_api_itself_is_not_behind_the_control_token(emu: Emulator) -> None:
    # FlexCharge's own endpoints keep their own credentials (the bearer token).
    assert raw(emu, "GET", "/v1/orders", {"Host": f"127.0.0.1:{emu.port}"})[0] == 401


def test_the_bind_host_is_accepted_as_host_when_configured() -> None:
    config = EmulatorConfig(host="127.0.0.2", rescue_delay=None, expire_delay=None)
    with Emulator(config) as emu:
        control = EmulatorControl(emu.url, config.control_token)
        assert control.get("state").status_code == 200  # Host: 127.0.0.2:PORT
        assert EmulatorControl(emu.url, "wrong").get("state").status_code == 401


def test_each_run_has_its_own_token() -> None:
    assert EmulatorConfig().control_token != EmulatorConfig().control_token
    assert len(EmulatorConfig().control_token) >= 24


def run_module(*args: str, env: dict[str, str] | None = None) -> list[str]:
    """Start ``python -m flexcharge_emulator``, read its banner, stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flexcharge_emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        while not any(line.startswith("control token") for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line.strip())
    finally:
        process.terminate()
        process.wait(timeout=10)
    return lines


def test_the_process_binds_to_loopback_and_prints_its_token() -> None:
    lines = run_module()
    assert lines[0].startswith("FlexCharge emulator listening on http://127.0.0.1:")
    token = lines[-1].rpartition(": ")[2]
    assert len(token) >= 24
    assert not any("WARNING" in line for line in lines)


def test_the_token_comes_from_the_environment_and_a_public_bind_is_announced() -> None:
    lines = run_module("--host", "0.0.0.0", env={TOKEN_ENV: "demo-token-0123456789"})  # noqa: S104
    assert lines[-1] == f"control token ({TOKEN_HEADER} header): demo-token-0123456789"
    assert any(line.startswith("WARNING: bound to 0.0.0.0, not loopback") for line in lines)


def test_the_command_never_copies_a_real_sites_credentials(settings, emulator_served) -> None:
    from django.core.management import call_command

    settings.FLEXCHARGE_API_URL = "https://api.flex-charge.com/v1/"
    settings.FLEXCHARGE_APP_SECRET = "real-production-secret"
    real_key = "cmVhbC1wcm9kdWN0aW9uLXN1YnNjcmliZXIta2V5"
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [real_key]
    seen = emulator_served
    stderr = io.StringIO()
    call_command("flexcharge_emulator", "--port", "0", stderr=stderr)

    config = seen[0]
    assert config.subscriber_key == DEFAULT_SUBSCRIBER_KEY  # never signs with the real key
    assert config.app_secret != "real-production-secret"
    assert config.mid != settings.FLEXCHARGE_MID
    assert config.host == "127.0.0.1"
    assert "FLEXCHARGE_API_URL is not a loopback URL" in stderr.getvalue()
