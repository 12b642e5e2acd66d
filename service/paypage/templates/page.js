// The hosted page's only script, allowed by its hash in the page's content
// security policy. It adds what plain HTML cannot: a copy button for the
// deposit address, a countdown to the invoice's expiry, and a refresh that
// updates the page in place (so that screen readers hear status changes
// through aria-live) instead of reloading it. Without it the page still
// works: the address can be selected, the expiry time is printed, and a
// <noscript> meta refresh reloads the page.
(function () {
  "use strict";
  var digits = document.documentElement.getAttribute("data-digits") || "";
  function local(n) {
    var s = String(n);
    if (digits.length !== 10) { return s; }
    return s.replace(/[0-9]/g, function (d) { return digits.charAt(Number(d)); });
  }
  function fill(fmt, vals) {
    return fmt.replace(/\{([a-z])\}/g, function (_, k) { return local(vals[k]); });
  }

  function setupCopy(root) {
    var buttons = root.querySelectorAll("button[data-copy]");
    Array.prototype.forEach.call(buttons, function (b) {
      var target = document.getElementById(b.getAttribute("data-copy"));
      var status = document.getElementById("copy-status");
      if (!target) { return; }
      b.hidden = false;
      b.addEventListener("click", function () {
        var text = target.textContent;
        var done = function () { if (status) { status.textContent = status.getAttribute("data-done"); } };
        var failed = function () {
          var range = document.createRange();
          range.selectNodeContents(target);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          var ok = false;
          try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
          if (status) { status.textContent = status.getAttribute(ok ? "data-done" : "data-failed"); }
        };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(done, failed);
        } else {
          failed();
        }
      });
    });
  }

  var countdownTimer = null;
  function setupCountdown(root) {
    if (countdownTimer) { clearInterval(countdownTimer); countdownTimer = null; }
    var el = root.querySelector("#countdown[data-expires]");
    if (!el) { return; }
    var expires = Number(el.getAttribute("data-expires")) * 1000;
    var tick = function () {
      var left = Math.floor((expires - Date.now()) / 1000);
      if (left <= 0) {
        el.textContent = el.getAttribute("data-over");
        clearInterval(countdownTimer);
        countdownTimer = null;
        refresh();
        return;
      }
      var d = Math.floor(left / 86400), h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      var fmt = left < 120 ? "data-fmt-s" : left < 7200 ? "data-fmt-m" : left < 172800 ? "data-fmt-h" : "data-fmt-d";
      if (fmt === "data-fmt-m") { m = Math.floor(left / 60); }
      el.textContent = fill(el.getAttribute(fmt), { d: d, h: h, m: m, s: fmt === "data-fmt-s" ? left : s });
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
  }

  var busy = false;
  function refresh() {
    var page = document.getElementById("page");
    if (busy || !page || !page.hasAttribute("data-refresh") || !window.fetch) { return; }
    busy = true;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin", redirect: "error" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.getElementById("page");
        var announce = document.getElementById("announce");
        var nextAnnounce = doc.getElementById("announce");
        if (!next || !announce || !nextAnnounce) { return; }
        if (next.getAttribute("data-state") !== page.getAttribute("data-state")) {
          // A new state (paid, expired, …): show the new page whole; the
          // live region itself is kept, so that the change is announced.
          nextAnnounce.replaceWith(announce);
          page.replaceChildren.apply(page, Array.prototype.slice.call(next.childNodes).map(function (n) { return document.adoptNode(n); }));
          if (!next.hasAttribute("data-refresh")) { page.removeAttribute("data-refresh"); }
          page.setAttribute("data-state", next.getAttribute("data-state"));
          setupCopy(page);
          setupCountdown(page);
        } else {
          var live = document.getElementById("live"), nextLive = doc.getElementById("live");
          if (live && nextLive && live.getAttribute("data-version") !== nextLive.getAttribute("data-version")) {
            live.replaceWith(document.adoptNode(nextLive));
            setupCopy(nextLive);
            setupCountdown(page);
          }
          var done = document.getElementById("refreshed"), nextDone = doc.getElementById("refreshed");
          if (done && nextDone) { done.textContent = nextDone.textContent; }
        }
        if (announce.textContent !== nextAnnounce.textContent) { announce.textContent = nextAnnounce.textContent; }
      })
      .catch(function () { /* offline for a moment: the next refresh tries again */ })
      .then(function () { busy = false; });
  }

  setupCopy(document);
  setupCountdown(document);
  var page = document.getElementById("page");
  if (page && page.hasAttribute("data-refresh")) {
    setInterval(refresh, Number(page.getAttribute("data-refresh")) * 1000);
    // A customer who paid from a wallet app on the same phone comes back
    // to this tab: show what arrived at once rather than at the next tick.
    window.addEventListener("focus", refresh);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  }
})();
