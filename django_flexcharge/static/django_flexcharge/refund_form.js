// The admin's Refund form: typing an amount chooses "Partial", so what is typed is what is
// refunded. Only a convenience: the server refuses a "Full" choice with a different amount.
"use strict";
document.addEventListener("input", function (event) {
  var field = event.target;
  if (!field.name || !/^refund-[^-]+-amount$/.test(field.name) || !field.value.trim()) {
    return;
  }
  var prefix = field.name.slice(0, -"amount".length);
  var partial = document.querySelector("input[name='" + prefix + "kind'][value='partial']");
  if (partial) {
    partial.checked = true;
  }
});
