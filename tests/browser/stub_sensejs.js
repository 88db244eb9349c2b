/*
 * A stand-in for FlexCharge's SenseJS widget, for the browser tests only.
 *
 * The page's loader ({% flexcharge_sensejs %}) queues fc() calls on a stub
 * (fc.q) and injects this script async from FLEXCHARGE_SENSEJS_URL. Like the
 * real widget, this replaces window.fc, replays the queue and handles later
 * calls. For the per-order call it hands over a sense key derived from the
 * order id ("stub-sense-<order id>"), so a test can tell the key came from
 * the call the page made for its own order.
 *
 * How the key is delivered is chosen by window.__flexchargeStubConfig (set by
 * the test with an init script; default {channel: "event"}):
 *   "event":    window event "flexcharge:sensekey", detail {senseKey: key}
 *               (the event django_flexcharge/sensejs.js listens to by default);
 *   "callback": the function passed as the last argument of the per-order call;
 *   "none":     nothing (a widget that never yields a key).
 * What the widget saw is kept in window.__flexchargeStub for assertions.
 */
(function (w) {
  "use strict";
  var config = w.__flexchargeStubConfig || {};
  var channel = config.channel || "event";
  var invoke = config.invoke || "order";
  var seen = (w.__flexchargeStub = { init: null, orders: [], delivered: [] });

  function deliver(orderId, callback) {
    var key = "stub-sense-" + orderId;
    if (channel === "event") {
      w.dispatchEvent(new CustomEvent("flexcharge:sensekey", { detail: { senseKey: key } }));
    } else if (channel === "callback" && typeof callback === "function") {
      callback(key);
    } else {
      return;
    }
    seen.delivered.push(key);
  }

  function handle(args) {
    args = Array.prototype.slice.call(args);
    if (args[0] === "init") {
      seen.init = args.slice(1);
    } else if (args[0] === invoke) {
      seen.orders.push(args[1]);
      var callback = args[args.length - 1];
      // A real widget answers after its own network round trip.
      w.setTimeout(function () {
        deliver(args[1], callback);
      }, 50);
    }
  }

  var queued = (w.fc && w.fc.q) || [];
  w.fc = function () {
    handle(arguments);
  };
  for (var i = 0; i < queued.length; i++) {
    handle(queued[i]);
  }
})(window);
