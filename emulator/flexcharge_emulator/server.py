"""HTTP plumbing: routing, faults, bearer check, JSON in and out, one log line per request.

``/v1/...`` is the FlexCharge API; ``/_emulator/...`` is the control plane
for demos and tests, which faults never touch and ``control.refusal`` guards
(per-run token, loopback ``Host``, no foreign ``Origin``). The handler
speaks HTTP/1.1 with keep-alive (clients keep a ``requests.Session``) and
``Server: Kestrel`` as the sandbox does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import control, sensejs
from . import faults as fault_actions
from .payloads import validation_error
from .refund_knobs import DROP_CONNECTION

if TYPE_CHECKING:
    from .core import Emulator

logger = logging.getLogger("flexcharge_emulator")

ID = r"(?P<id>[^/]+)"
# (method, path regex, handler name, kind): kind "open" needs no bearer, "api" does,
# "control" is the token-guarded, fault-free control plane, "static" the SenseJS
# stand-in (no bearer, no token, no faults). /tokenize is "open":
# its credential is mid + environment (§4); a bearer, as the client sends, is tolerated.
ROUTES = [
    ("POST", r"/v1/oauth2/token", "token", "open"),
    ("POST", r"/v1/tokenize", "tokenize", "open"),
    ("POST", r"/v1/transmit", "transmit", "api"),
    ("POST", r"/v1/evaluate", "evaluate", "api"),
    ("POST", r"/v1/outcome", "outcome", "api"),
    ("GET", r"/v1/orders", "list_orders", "api"),
    ("GET", rf"/v1/orders/{ID}", "get_order", "api"),
    ("POST", rf"/v1/orders/{ID}/refund", "refund", "api"),
    ("POST", rf"/v1/orders/{ID}/cancel", "cancel", "api"),
    ("POST", rf"/v1/orders/{ID}/external-cancel", "external_cancel", "api"),
    ("GET", re.escape(sensejs.PATH), "sensejs", "static"),
    ("POST", rf"/_emulator/orders/{ID}/approve", "control_approve", "control"),
    ("POST", rf"/_emulator/orders/{ID}/expire", "control_expire", "control"),
    ("POST", rf"/_emulator/orders/{ID}/webhooks", "control_event", "control"),
    ("GET", r"/_emulator/faults", "control_get_faults", "control"),
    ("POST", r"/_emulator/faults", "control_set_faults", "control"),
    ("DELETE", r"/_emulator/faults", "control_reset_faults", "control"),
    ("GET", r"/_emulator/state", "control_state", "control"),
    ("POST", r"/_emulator/refunds", "control_refund_knobs", "control"),
    ("POST", rf"/_emulator/orders/{ID}/refund", "control_portal_refund", "control"),
    ("POST", r"/_emulator/reset", "control_reset", "control"),
    ("POST", r"/_emulator/tokens/expire", "control_expire_tokens", "control"),
    ("POST", r"/_emulator/webhooks/flush", "control_flush", "control"),
]
# ASP.NET routing ignores case; so does the emulator's.
COMPILED = [(m, re.compile(p + r"/?", re.IGNORECASE), name, kind) for m, p, name, kind in ROUTES]


class EmulatorServer(ThreadingHTTPServer):
    """Tracks open connections so ``stop()`` can end idle keep-alive ones at once."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def route_path(raw: str) -> str:
    """``raw`` with each segment percent-decoded, as ASP.NET routes a request.

    An encoded ``/`` (``%2F``) stays inside its segment, so ``{id}`` may hold one:
    ``/v1/orders/INV%2F2026%20%237/cancel`` routes to cancel with the id
    ``INV/2026 #7`` (``%`` and ``/`` stay escaped here; the handler decodes ``{id}``).
    """
    return "/".join(
        unquote(segment).replace("%", "%25").replace("/", "%2F") for segment in raw.split("/")
    )


def match_route(method: str, path: str) -> tuple[str, str, re.Match[str]] | int:
    """(handler name, kind, match) for a request, or 404/405."""
    status = 404
    for route_method, pattern, name, kind in COMPILED:
        match = pattern.fullmatch(path)
        if match is not None:
            if route_method == method:
                return name, kind, match
            status = 405
    return status


def make_handler(emulator: Emulator, routes: dict[str, Callable[..., tuple[int, Any]]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "Kestrel"
        timeout = emulator.config.idle_timeout
        # One buffered write per response and no Nagle: headers and body in separate
        # small segments would meet the client's delayed ACK (~40 ms per request).
        wbufsize = -1
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._handle()

        do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)  # the stdlib's own lines carry the query string

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            path = route_path(parts.path)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            raw = self.rfile.read(length) if length > 0 else b""
            route = match_route(self.command, path)
            if isinstance(route, int):
                self._send(route, None, path)
                return
            name, kind, match = route
            if kind == "control":
                refused = control.refusal(emulator.config, emulator.port, self.headers)
                if refused is not None:
                    self._send(refused[0], {"error": refused[1]}, path)
                    return
            # Faults are for the API; the control plane and the SenseJS stand-in never get one.
            decision = emulator.faults.decide(path) if kind in ("api", "open") else None
            if decision is not None and not self._apply(decision, path):
                return
            if kind == "api" and not emulator.issuer.valid(self.headers.get("Authorization")):
                self._send(401, None, path, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                return
            try:
                body = json.loads(raw) if raw.strip() else {}
            except (ValueError, UnicodeDecodeError):
                body = None
                if kind != "control":
                    error = {"$": ["The JSON value could not be converted."]}
                    self._send(400, validation_error(error), path)
                    return
            kwargs: dict[str, Any] = {"body": body, "query": parse_qs(parts.query)}
            if "id" in match.groupdict():
                kwargs["ident"] = unquote(match.group("id"))
            try:
                status, payload = routes[name](**kwargs)
            except Exception:
                # An emulator bug must look like a server error, not a hung connection.
                logger.exception("emulator error in %s %s", self.command, path)
                status, payload = 500, {"message": "Emulator error"}
            if (decision is not None and decision.drop_response) or status == DROP_CONNECTION:
                self._drop(path, "processed, response dropped")
                return
            self._send(status, payload, path)

        def _apply(self, decision: fault_actions.Decision, path: str) -> bool:
            """Carry out an injected fault; False when the request ends here, unprocessed."""
            if decision.latency and emulator.stopping.wait(decision.latency):
                self._drop(path, "stopping")
                return False
            if decision.action == fault_actions.HANG:
                emulator.stopping.wait(decision.hang)
                self._drop(path, "hang")
                return False
            if decision.action == fault_actions.DROP:
                self._drop(path, "dropped")
                return False
            if decision.action == fault_actions.ERROR:
                headers = {}
                if decision.retry_after is not None:
                    headers["Retry-After"] = str(math.ceil(decision.retry_after))
                self._send(decision.status, {"message": "Injected fault"}, path, headers)
                return False
            return True

        def _drop(self, path: str, why: str) -> None:
            """Close the socket without an answer: the client sees a connection error."""
            self.close_connection = True
            logger.info("%s %s DROP (%s)", self.command, path, why)
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _send(
            self, status: int, payload: Any, path: str, headers: dict[str, str] | None = None
        ) -> None:
            content_type = "application/json; charset=utf-8"
            if isinstance(payload, sensejs.RawBody):
                data, content_type = payload.body, payload.content_type
            else:
                data = b"" if payload is None else json.dumps(payload).encode("utf-8")
            self.send_response_only(status)
            self.send_header("Date", self.date_time_string())
            self.send_header("Server", self.server_version)
            if payload is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            logger.info("%s %s %d", self.command, path, status)

    return Handler
