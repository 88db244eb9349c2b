"""``MultiEmulator``: several merchants behind one emulated FlexCharge API URL.

FlexCharge serves every merchant at one API URL and tells them apart by their
credentials. So does this: each merchant is a whole ``Emulator`` (its own
keys, vault, orders, tokens, webhook sender and subscriber key, webhooks to its
own URL) that opens no socket; one server routes each request to the merchant
it belongs to: a token request by its AppKey, ``/tokenize`` by its ``mid``,
any other call by the merchant that issued its bearer token (a token no
merchant issued gets the first merchant's 401). The control plane takes
``?merchant=<MID>`` (default: the first merchant); in Python, ``merchant(mid)``
returns that merchant's ``Emulator`` with its usual control methods and records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .config import EmulatorConfig
from .core import Emulator
from .payloads import get
from .server import make_handler, match_route, route_path
from .serving import Serving


class MultiEmulator(Serving):
    def __init__(self, merchants: Sequence[EmulatorConfig]) -> None:
        if not merchants:
            raise ValueError("a MultiEmulator needs at least one merchant")
        mids = [config.mid for config in merchants]
        if len(set(mids)) != len(mids):
            raise ValueError("each merchant needs its own MID")
        self.merchants = [Emulator(config) for config in merchants]
        first = self.merchants[0].config
        super().__init__(first.host, first.port)

    def _handler(self) -> type:
        return self._front_handler()

    def _merchants(self) -> Sequence[Emulator]:
        return self.merchants

    def merchant(self, mid: str) -> Emulator:
        """The merchant with ``mid`` (LookupError if none): its state, approve(), expire()..."""
        for emulator in self.merchants:
            if emulator.config.mid == mid:
                return emulator
        raise LookupError(f"no merchant with MID {mid!r}")

    # -- routing -----------------------------------------------------------------------------

    def route(self, method: str, raw_path: str, headers: Any, body: bytes) -> Emulator:
        """The merchant a request belongs to (the first one when nothing says)."""
        parts = urlsplit(raw_path)
        query = {key.lower(): values for key, values in parse_qs(parts.query).items()}
        found = match_route(method, route_path(parts.path))
        name, kind = (found[0], found[1]) if not isinstance(found, int) else ("", "")
        chosen: Emulator | None = None
        if kind == "control":
            chosen = self._by_mid((query.get("merchant") or [""])[0])
        elif name == "token":
            chosen = self._by_app_key(body)
        elif name == "tokenize":
            chosen = self._by_mid((query.get("mid") or [""])[0])
        elif kind == "api":
            authorization = headers.get("Authorization")
            chosen = next((e for e in self.merchants if e.issuer.valid(authorization)), None)
        return chosen or self.merchants[0]

    def _by_mid(self, mid: str) -> Emulator | None:
        return next((e for e in self.merchants if e.config.mid.lower() == mid.lower()), None)

    def _by_app_key(self, body: bytes) -> Emulator | None:
        try:
            key = get(json.loads(body), "AppKey")
        except (ValueError, UnicodeDecodeError):
            return None
        return next((e for e in self.merchants if e.config.app_key == key), None)

    def _front_handler(self) -> type:
        # One handler class per merchant, as a single Emulator builds it. The front
        # class reads the body, picks the merchant, and lets that merchant's class
        # handle this one request (the same connection may carry the next one to
        # another merchant, so the instance goes back to the front class after).
        classes = {id(e): make_handler(e, e._routes()) for e in self.merchants}
        multi = self

        class Front(classes[id(self.merchants[0])]):  # type: ignore[misc]
            def _handle(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = 0
                rfile: Any = self.rfile  # type: ignore[has-type]
                raw = rfile.read(length) if length > 0 else b""
                chosen = multi.route(self.command, self.path, self.headers, raw)
                self.rfile = BytesIO(raw)
                self.__class__ = classes[id(chosen)]
                try:
                    self._handle()
                finally:
                    self.__class__ = Front
                    self.rfile = rfile

        return Front
