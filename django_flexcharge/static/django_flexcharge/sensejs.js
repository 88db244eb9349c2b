/*
 * django-flexcharge: carry the SenseJS sense key into the checkout form.
 *
 * FlexCharge does not document how the page receives the key (flexcharge-api.md
 * §12), so every plausible channel feeds one function, setKey():
 *   1. a callback: window.flexchargeSenseKey(key), passed as the last argument
 *      of the per-order fc() call the {% flexcharge_sensejs %} tag renders;
 *   2. a window event (data-key-event, default "flexcharge:sensekey") whose
 *      detail is the key or an object with senseKey / sense_key / key;
 *   3. a global read by dotted path (data-key-global, e.g. "fc.senseKey"),
 *      polled for a while; a function there is called for the key.
 * setKey() writes into every input named flexcharge_sense_key, now and once the
 * document has loaded, since the field may come after the script. A page that
 * has no such input (the {% flexcharge_sense_key_field %} tag was not used)
 * gets a hidden one in each of its POST forms that posts to the page's own
 * origin (never to a form, or a button's formaction, that sends it elsewhere),
 * so the key still reaches the server in the field CONTRACT §3 names.
 */
(function (w, d) {
  "use strict";
  if (w.flexchargeSenseKey) {
    return; // the tag rendered twice: one receiver is enough
  }
  var script = d.currentScript;
  var eventName = (script && script.getAttribute("data-key-event")) || "";
  var globalPath = (script && script.getAttribute("data-key-global")) || "";
  var FIELD = 'input[name="flexcharge_sense_key"]';
  var current = "";

  function sameOrigin(url) {
    // Resolved against the document: "", "/pay/" and "pay/" are the page's own.
    try {
      return new URL(url || "", d.baseURI).origin === w.location.origin;
    } catch (err) {
      return false;
    }
  }

  function postsHome(form) {
    // getAttribute, not form.action: an input named "action" would shadow it.
    if (!sameOrigin(form.getAttribute("action"))) {
      return false;
    }
    var overrides = form.querySelectorAll("[formaction]");
    for (var i = 0; i < overrides.length; i++) {
      if (!sameOrigin(overrides[i].getAttribute("formaction"))) {
        return false;
      }
    }
    return true;
  }

  function addFields() {
    var forms = d.querySelectorAll("form");
    for (var i = 0; i < forms.length; i++) {
      if ((forms[i].getAttribute("method") || "").toLowerCase() !== "post") {
        continue;
      }
      if (!postsHome(forms[i])) {
        continue; // the key is for this site, never for a form posting elsewhere
      }
      var input = d.createElement("input");
      input.type = "hidden";
      input.name = "flexcharge_sense_key";
      input.setAttribute("data-flexcharge-sense-key", "");
      forms[i].appendChild(input);
    }
  }

  function fill() {
    if (!current) {
      return;
    }
    if (!d.querySelector(FIELD) && d.readyState !== "loading") {
      addFields();
    }
    var fields = d.querySelectorAll(FIELD);
    for (var i = 0; i < fields.length; i++) {
      fields[i].value = current;
    }
  }

  function extract(value) {
    if (value && typeof value === "object") {
      value = value.senseKey || value.sense_key || value.key || "";
    }
    return typeof value === "string" ? value : "";
  }

  function setKey(value) {
    var key = extract(value);
    if (key) {
      current = key;
      fill();
      if (d.readyState === "loading") {
        d.addEventListener("DOMContentLoaded", fill);
      }
    }
  }

  function readGlobal() {
    var value = w;
    var parts = globalPath.split(".");
    for (var i = 0; i < parts.length && value != null; i++) {
      value = value[parts[i]];
    }
    if (typeof value === "function") {
      try {
        value = value();
      } catch (err) {
        value = "";
      }
    }
    return extract(value);
  }

  w.flexchargeSenseKey = function (value) {
    setKey(value);
  };
  w.flexchargeSenseKey.current = function () {
    return current;
  };

  if (eventName) {
    w.addEventListener(eventName, function (event) {
      setKey(event.detail);
    });
  }

  if (globalPath) {
    // The widget loads async and may take a while; stop after ~30 s.
    var tries = 0;
    var timer = w.setInterval(function () {
      tries += 1;
      var key = readGlobal();
      if (key) {
        setKey(key);
      }
      if (key || tries >= 60) {
        w.clearInterval(timer);
      }
    }, 500);
  }
})(window, document);
