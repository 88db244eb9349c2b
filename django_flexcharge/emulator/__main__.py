"""``python -m django_flexcharge.emulator``: the emulator as a process of its own, no Django.

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
from typing import Any

from .config import DEFAULT_PORT, EmulatorConfig, is_loopback_host
from .control import TOKEN_ENV, TOKEN_HEADER
from .core import Emulator


def delay(text: str) -> float | None:
    """Seconds, or "never"/"none" for "only through the control endpoints"."""
    if text.strip().lower() in {"never", "none", ""}:
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a delay cannot be negative")
    return value


def add_arguments(parser: Any, defaults: EmulatorConfig) -> None:
    """Options shared with ``manage.py flexcharge_emulator`` (defaults differ there)."""
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--webhook-url", default=defaults.webhook_url, help='"" disables webhooks')
    parser.add_argument("--subscriber-key", default=defaults.subscriber_key)
    parser.add_argument("--app-key", default=defaults.app_key)
    parser.add_argument("--app-secret", default=defaults.app_secret)
    parser.add_argument("--mid", default=defaults.mid)
    parser.add_argument("--site-id", default=defaults.site_id)
    parser.add_argument("--tokenization-key", default=defaults.tokenization_key)
    parser.add_argument("--rescue-delay", type=delay, default=defaults.rescue_delay)
    parser.add_argument("--expire-delay", type=delay, default=defaults.expire_delay)
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl)
    parser.add_argument("--webhook-max-attempts", type=int, default=defaults.webhook_max_attempts)
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


def config_from(options: Any) -> EmulatorConfig:
    return EmulatorConfig(
        app_key=options.app_key,
        app_secret=options.app_secret,
        mid=options.mid,
        site_id=options.site_id,
        tokenization_key=options.tokenization_key,
        subscriber_key=options.subscriber_key,
        webhook_url=options.webhook_url or None,
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


def serve(config: EmulatorConfig, announce: Any = print) -> None:
    """Run until SIGINT/SIGTERM (or Ctrl-C), then stop cleanly."""
    done = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        done.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = Emulator(config).start()
    try:
        announce(f"FlexCharge emulator listening on {emulator.base_url}")
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
    parser = argparse.ArgumentParser(prog="python -m django_flexcharge.emulator")
    add_arguments(parser, EmulatorConfig())
    parser.add_argument("--log-level", default="INFO")
    options = parser.parse_args(argv)
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(message)s")
    serve(config_from(options), announce=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
