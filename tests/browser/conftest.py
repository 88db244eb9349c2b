"""Playwright in Debian's chromium: one browser per run, one context per test, artifacts on failure.

Run with ``make test-browser`` (``pytest -q -m browser tests/browser``). The
browser is never downloaded: Playwright drives the system chromium
(``FLEXCHARGE_TEST_CHROMIUM``, default ``/usr/bin/chromium``) with the flags
a machine without outside network needs. A test that fails in its call phase
leaves ``test-artifacts/<test>.png``, ``.html`` and ``.log`` (the page's
console) at the repository root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("FLEXCHARGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these chromium keeps trying Google's hosts, which this network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Playwright's wait for any one element or navigation, in ms: generous for a
#: loaded machine, far below the whole run's 60 s budget.
TIMEOUT_MS = 10_000

console_key = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (set FLEXCHARGE_TEST_CHROMIUM)")
    # Playwright's sync API keeps an event loop running in this thread, and Django
    # refuses ORM calls from a thread with a running loop unless told the code is
    # synchronous. Set only while the loop runs, so other tests keep the check.
    with pytest.MonkeyPatch.context() as env, sync_api.sync_playwright() as playwright:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh context (cookies, storage) and page; its console is kept for the artifacts."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    request.node.stash[console_key] = console
    page.on("console", lambda msg: console.append(f"console.{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    page.on("requestfailed", lambda req: console.append(f"requestfailed: {req.url} {req.failure}"))
    page.on(
        "response",
        lambda res: res.status >= 400 and console.append(f"HTTP {res.status}: {res.url}"),
    )
    try:
        yield page
    finally:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failed test, save what the browser showed before the page fixture closes it."""
    report = yield
    if report.when == "call" and report.failed:
        page = getattr(item, "funcargs", {}).get("page")
        if page is not None:
            save_artifacts(item, page)
    return report


def save_artifacts(item: pytest.Item, page: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w-]+", "_", item.nodeid.removeprefix("tests/browser/"))
    html, png, log = (ARTIFACTS / f"{name}.{suffix}" for suffix in ("html", "png", "log"))
    lines = [f"url: {page.url}", *item.stash.get(console_key, [])]
    for fixture, value in getattr(item, "funcargs", {}).items():
        if callable(getattr(value, "log_tail", None)):  # a server the test ran
            lines += ["", f"--- {fixture}: server log ---", value.log_tail()]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        html.write_text(page.content(), encoding="utf-8")
        page.screenshot(path=str(png), full_page=True)
    except Exception as exc:  # a crashed page must not hide the test's own failure
        with log.open("a", encoding="utf-8") as out:
            out.write(f"could not capture the page: {exc!r}\n")
