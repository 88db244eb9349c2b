"""A SenseJS stand-in at ``/sensejs/widget.js``, so a local checkout gets a sense key.

FlexCharge's widget fingerprints the device and hands the page a sense key;
its internals are not documented (see docs/checkout.md). This stand-in keeps
the documented outer shape: it replaces the ``fc`` loader stub, runs the
queued calls, remembers ``init(mid, siteId)`` and answers every per-order call
``fc(name, orderId, callback)`` with a new key ``emu-sense-<32 hex>``, given
to the callback and dispatched as the window event ``flexcharge:sensekey``
(``detail: {senseKey, orderId}``), the channels the app's ``sensejs.js`` listens on.
Served when ``FLEXCHARGE_API_URL`` points at the emulator and
``FLEXCHARGE_SENSEJS_URL`` is unset (``conf.SENSEJS_URL``).
"""

from __future__ import annotations

from dataclasses import dataclass

PATH = "/sensejs/widget.js"

SCRIPT = """\
/* FlexCharge emulator: SenseJS stand-in (not FlexCharge's widget). */
(function (w) {
  "use strict";
  var queued = (w.fc && w.fc.q) || [];
  var state = { mid: "", siteId: "", keys: {} };
  function newKey() {
    var hex = "";
    var bytes = new Uint8Array(16);
    (w.crypto || w.msCrypto).getRandomValues(bytes);
    for (var i = 0; i < bytes.length; i++) {
      hex += (bytes[i] + 256).toString(16).slice(1);
    }
    return "emu-sense-" + hex;
  }
  function fc(command, a, b) {
    if (command === "init") {
      state.mid = String(a || "");
      state.siteId = String(b || "");
      return;
    }
    var orderId = a == null ? "" : String(a);
    var key = state.keys[orderId] || (state.keys[orderId] = newKey());
    if (typeof b === "function") {
      b(key);
    }
    w.dispatchEvent(new CustomEvent("flexcharge:sensekey", {
      detail: { senseKey: key, orderId: orderId }
    }));
  }
  fc.emulator = state;
  w.fc = fc;
  for (var i = 0; i < queued.length; i++) {
    fc.apply(null, queued[i]);
  }
})(window);
"""


@dataclass(frozen=True)
class RawBody:
    """A response that is not JSON: ``body`` sent as is with ``content_type``."""

    body: bytes
    content_type: str


def widget(**_: object) -> tuple[int, RawBody]:
    return 200, RawBody(SCRIPT.encode("utf-8"), "application/javascript; charset=utf-8")
