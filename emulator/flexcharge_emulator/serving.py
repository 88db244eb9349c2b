"""Start, stop and the ``with`` block, once for ``Emulator`` and ``MultiEmulator``.

Both serve one socket from a background thread and run, behind it, one or
more merchants (a whole ``Emulator`` each) whose clock and webhook sender
must start with the socket and stop after it; tests start and stop many, so
no thread or socket may outlive ``stop()``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

from .server import EmulatorServer

if TYPE_CHECKING:
    from .core import Emulator


class Serving:
    """A server on ``host:port`` (port 0: a free one, known after ``start()``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type:
        """The request handler class the server uses."""
        raise NotImplementedError

    def _merchants(self) -> Sequence[Emulator]:
        """The emulators behind the socket, whose clocks and senders run with it."""
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = EmulatorServer((self.host, self.port), self._handler())
        self.port = self._server.server_address[1]
        for merchant in self._merchants():
            merchant.port = self.port  # the control plane checks the port it is reached on
            merchant.stopping.clear()
            merchant.clock.start()
            merchant.webhooks.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"flexcharge-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for merchant in self._merchants():
            merchant.stopping.set()  # wakes handlers sleeping in a latency or hang fault
        server.shutdown()
        server.close_connections()
        server.server_close()
        for merchant in self._merchants():
            merchant.clock.stop()
            merchant.webhooks.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Root URL (the control plane lives under ``/_emulator/``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to put in ``FLEXCHARGE_API_URL`` (one URL for every merchant, as at FlexCharge)."""
        return f"{self.url}/v1/"
