// Short polling: an element with data-poll="URL" has its contents replaced every
// data-every seconds with the server's HTML fragment (rendered and escaped server-side).
"use strict";
document.querySelectorAll("[data-poll]").forEach(function (el) {
  var every = Math.max(1, Number(el.getAttribute("data-every") || "5")) * 1000;
  var url = el.getAttribute("data-poll");
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (r.ok && !r.redirected) { return r.text(); } throw new Error(String(r.status)); })
      .then(function (html) { el.innerHTML = html; el.removeAttribute("data-stale"); })
      .catch(function () { el.setAttribute("data-stale", "true"); })
      .finally(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
});
