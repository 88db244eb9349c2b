"""``python -m flexcharge_emulator``: the emulator as a process of its own, no Django.

Prints one ``listening on <base_url>`` line (flushed) once it accepts
connections, so a test or benchmark that starts it with ``--port 0`` can read
the port from stdout, then the control token its ``/_emulator/`` endpoints
require. Binds to 127.0.0.1 unless ``--host`` says otherwise (and warns when it
does). Runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from .config import DEFAULT_PORT, EmulatorConfig, is_loopback_host
from .control import TOKEN_ENV, TOKEN_HEADER
from .core import Emulator
from .merchants import MultiEmulator


def delay(text: str) -> float | None:
    """Seconds, or "never"/"none" for "only through the control endpoints"."""
    if text.strip().lower() in {"never", "none", ""}:
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a delay cannot be negative")
    return value


#: Where CONTRACT §1 mounts the app's webhook view; the Django command reverses the real one.
DEFAULT_WEBHOOK_PATH = "/flexcharge/webhook/"


def add_arguments(
    parser: Any,
    defaults: EmulatorConfig,
    *,
    site_url: str | None = None,
    webhook_path: str = DEFAULT_WEBHOOK_PATH,
    credentials_from: str = "",
) -> None:
    """Options shared with ``manage.py flexcharge_emulator`` (defaults differ there).

    ``credentials_from`` says in ``--help`` where the credential defaults come
    from: their values are never printed.
    """
    source = credentials_from or "the emulator's built-in test value, which any site may use"
    parser.set_defaults(webhook_path=webhook_path)
    parser.add_argument(
        "--host", default=defaults.host, help="interface to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s). Point the site at "
        "it with FLEXCHARGE_API_URL = 'http://127.0.0.1:PORT/v1/'",
    )
    parser.add_argument(
        "--site-url",
        default=site_url,
        help=f"root URL of your site; webhooks go to SITE_URL + {webhook_path} "
        + ("(default: %(default)s)" if site_url else "(default: none: webhooks are only recorded)"),
    )
    parser.add_argument(
        "--webhook-url",
        default=None,
        help='full URL to POST webhooks to, instead of --site-url\'s; "" disables webhooks '
        "(they are still recorded)",
    )
    parser.add_argument(
        "--app-key", default=defaults.app_key, help=f"AppKey accepted by /oauth2/token ({source})"
    )
    parser.add_argument(
        "--app-secret",
        default=defaults.app_secret,
        help=f"AppSecret accepted by /oauth2/token ({source})",
    )
    parser.add_argument(
        "--mid", default=defaults.mid, help=f"merchant id (GUID) /tokenize expects ({source})"
    )
    parser.add_argument(
        "--site-id", default=defaults.site_id, help=f"site id (GUID) for SenseJS ({source})"
    )
    parser.add_argument(
        "--tokenization-key",
        default=defaults.tokenization_key,
        help=f"the environment key /tokenize expects ({source})",
    )
    parser.add_argument(
        "--subscriber-key",
        default=defaults.subscriber_key,
        help=f"base64 key webhooks are signed with ({source})",
    )
    parser.add_argument(
        "--rescue-delay",
        type=delay,
        default=defaults.rescue_delay,
        help="seconds until a declined renewal that will be rescued is approved and "
        "order.completed is sent; 'never': only through the control endpoints "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--expire-delay",
        type=delay,
        default=defaults.expire_delay,
        help="seconds until a renewal that will not be rescued expires (order.expired); "
        "'never' as above (default: %(default)s)",
    )
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=defaults.token_ttl,
        help="lifetime of an access token, seconds (default: %(default)s, FlexCharge's)",
    )
    parser.add_argument(
        "--webhook-max-attempts",
        type=int,
        default=defaults.webhook_max_attempts,
        help="delivery attempts per webhook before it is given up (default: %(default)s)",
    )
    parser.add_argument(
        "--resend-original-headers",
        action="store_true",
        default=defaults.webhook_resend_original_headers,
        help="redeliver a webhook with its first body, nonce and date",
    )
    parser.add_argument(
        "--evaluate-replay-conflict",
        action="store_true",
        default=defaults.evaluate_replay_conflict,
        help="answer 409 to an /evaluate replay (same idempotency key and body)",
    )
    parser.add_argument(
        "--control-token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"token the /_emulator/ control endpoints require as {TOKEN_HEADER} "
        f"(default: ${TOKEN_ENV}, else a random one printed at start)",
    )


def webhook_url_from(options: Any) -> str | None:
    """``--webhook-url`` if given (``""``: none), else ``--site-url`` + the webhook path."""
    url = getattr(options, "webhook_url", None)
    if url is not None:
        return str(url) or None
    site = str(getattr(options, "site_url", None) or "")
    if not site:
        return None
    path = str(getattr(options, "webhook_path", DEFAULT_WEBHOOK_PATH))
    return site.rstrip("/") + "/" + path.lstrip("/")


def webhook_url_problem(url: str | None) -> str:
    """Why webhooks to ``url`` cannot reach a site's webhook view, or ``""``."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"webhook URL {url!r} is not an absolute http(s) URL"
    if parts.path in ("", "/"):
        return (
            f"webhook URL {url} has no path: the site would answer every webhook with 404. "
            f"Give --site-url {url.rstrip('/')} (the webhook path is added) or the full "
            f"--webhook-url {url.rstrip('/')}{DEFAULT_WEBHOOK_PATH}"
        )
    return ""


def config_from(options: Any) -> EmulatorConfig:
    return EmulatorConfig(
        app_key=options.app_key,
        app_secret=options.app_secret,
        mid=options.mid,
        site_id=options.site_id,
        tokenization_key=options.tokenization_key,
        subscriber_key=options.subscriber_key,
        webhook_url=webhook_url_from(options),
        rescue_delay=options.rescue_delay,
        expire_delay=options.expire_delay,
        token_ttl=options.token_ttl,
        host=options.host,
        port=options.port,
        webhook_max_attempts=options.webhook_max_attempts,
        webhook_resend_original_headers=options.resend_original_headers,
        evaluate_replay_conflict=options.evaluate_replay_conflict,
        **({"control_token": options.control_token} if options.control_token else {}),
    )


def serve(
    config: EmulatorConfig, announce: Any = print, *, more: Sequence[EmulatorConfig] = ()
) -> None:
    """Run until SIGINT/SIGTERM (or Ctrl-C), then stop cleanly.

    ``more`` merchants are served at the same URL (``MultiEmulator``), told apart
    by their credentials as FlexCharge does; they share ``config``'s control token.
    """
    done = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        done.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    merchants = [config, *(replace(c, control_token=config.control_token) for c in more)]
    emulator: Emulator | MultiEmulator = (
        MultiEmulator(merchants).start() if more else Emulator(config).start()
    )
    try:
        announce(f"FlexCharge emulator listening on {emulator.base_url}")
        for merchant in merchants if more else ():
            announce(f"merchant {merchant.mid}: webhooks to {merchant.webhook_url or 'none'}")
        if not is_loopback_host(config.host):
            announce(
                f"WARNING: bound to {config.host}, not loopback: anyone who can reach this port "
                "can use the emulator's public credentials. Use --host 127.0.0.1 unless you "
                "need it (e.g. inside a container)."
            )
        announce(
            f"webhooks: {config.webhook_url or 'disabled'}; control: {emulator.url}/_emulator/"
        )
        announce(f"control token ({TOKEN_HEADER} header): {config.control_token}")
        while not done.wait(0.5):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flexcharge_emulator",
        description="A local FlexCharge (API, vault, orders, signed webhooks) for development "
        "and tests, no account needed. Runs until Ctrl-C.",
    )
    add_arguments(parser, EmulatorConfig())
    parser.add_argument("--log-level", default="INFO", help="(default: %(default)s)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(message)s")
    config = config_from(options)
    problem = webhook_url_problem(config.webhook_url)
    if problem:
        print(f"warning: {problem}", file=sys.stderr, flush=True)
    serve(config, announce=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
