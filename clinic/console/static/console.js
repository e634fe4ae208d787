/* clinic staff console: keyboard shortcuts, the idle-logoff warning that keeps drafts, small helpers.
   No inline scripts anywhere (CSP): every page behaviour is declared by data- attributes read here.
   Everything works without this file but the idle warning and the as-you-type search. */
(function () {
  "use strict";
  var doc = document.documentElement;
  doc.classList.add("js");
  var body = document.body;

  function typingIn(target) {
    var tag = (target && target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  /* "/" focuses the client search; Escape closes its results. */
  var search = document.getElementById("client-search");
  var results = document.getElementById("client-search-results");
  document.addEventListener("keydown", function (event) {
    if (event.key === "/" && search && !typingIn(event.target) && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      search.focus();
      search.select();
    } else if (event.key === "Escape" && results && (results.contains(document.activeElement) || event.target === search)) {
      /* The first Escape closes the results and keeps what was typed; in the box with the results
         already closed, Escape clears it (the search box's own behaviour). */
      if (results.innerHTML.trim()) { event.preventDefault(); }
      results.innerHTML = "";
      search.focus();
    }
  });
  if (search && results) {
    /* Arrow keys move between the results and the box; Down in the box opens them again once closed. */
    search.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown") {
        var first = results.querySelector("a");
        if (first) { event.preventDefault(); first.focus(); }
        else if (search.value.trim() && window.htmx) { event.preventDefault(); window.htmx.trigger(search, "search"); }
      }
    });
    results.addEventListener("keydown", function (event) {
      var links = Array.prototype.slice.call(results.querySelectorAll("a"));
      var index = links.indexOf(document.activeElement);
      if (index < 0) { return; }
      if (event.key === "ArrowDown" && index < links.length - 1) { event.preventDefault(); links[index + 1].focus(); }
      if (event.key === "ArrowUp") { event.preventDefault(); (index === 0 ? search : links[index - 1]).focus(); }
    });
    document.addEventListener("click", function (event) {
      if (!results.contains(event.target) && event.target !== search) { results.innerHTML = ""; }
    });
    /* Tabbing out of the search (past its results) closes them too. */
    search.form.addEventListener("focusout", function (event) {
      if (!event.relatedTarget || !search.form.contains(event.relatedTarget)) { results.innerHTML = ""; }
    });
  }

  /* A select marked data-autosubmit submits its form when changed (its button is there without JS). */
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-autosubmit]") && target.form) { target.form.requestSubmit(); }
  });

  /* A form or button with data-confirm asks once before an irreversible action. */
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopPropagation();  /* captured at the document: htmx on the form never hears of it */
    }
  }, true);

  /* An error summary takes the focus, so it is read out and Tab reaches its links first. */
  function focusSummary(root) {
    var summary = (root || document).querySelector("[data-focus-on-load]");
    if (summary) { summary.focus(); }
  }
  focusSummary(document);
  /* An error summary's link goes to its field: the control takes the focus (the first of a group of
     radios or checkboxes), with its label or legend scrolled into view above it. */
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest(".error-summary a[href^='#']");
    var target = link && document.getElementById(decodeURIComponent(link.hash.slice(1)));
    if (!target) { return; }
    var control = target.matches("input, select, textarea") ? target
      : target.querySelector("input:not([type=hidden]), select, textarea");
    if (!control) { return; }
    event.preventDefault();
    var group = (control.type === "radio" || control.type === "checkbox") && control.closest("fieldset");
    var label = group ? group.querySelector("legend") : document.querySelector("label[for='" + CSS.escape(control.id) + "']");
    (label || control).scrollIntoView();
    control.focus({ preventScroll: true });
  });
  document.body.addEventListener("htmx:afterSwap", function (event) { focusSummary(event.detail.target); });

  /* A swap that removed the focused control (a "More" link replaced by what it loaded) puts the
     focus on the first thing swapped in, so the keyboard carries on from where it was. */
  var swapFocus = null;
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    swapFocus = target && active && active !== document.body && target.contains(active)
      ? { before: target.previousElementSibling, parent: target.parentNode } : null;
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    var lost = swapFocus && (document.activeElement === document.body || !document.activeElement);
    if (lost) {
      var first = swapFocus.before ? swapFocus.before.nextElementSibling : swapFocus.parent && swapFocus.parent.firstElementChild;
      if (first && swapFocus.parent && swapFocus.parent.contains(first)) {
        if (!first.matches("a, button, input, select, textarea, [tabindex]")) { first.setAttribute("tabindex", "-1"); }
        first.focus();
      }
    }
    swapFocus = null;
  });

  /* --- Idle sign-out: warn a minute before, keep what was typed. ---------------------------- */
  var idleSeconds = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  if (!body.hasAttribute("data-signed-in") || !idleSeconds) { return; }
  var userKey = "clinic-draft:" + (body.getAttribute("data-user") || "") + ":" + location.pathname;
  /* The server notes a session's activity at most every 30 seconds: warn 90 seconds before the
     end (at half-time for a very short timeout), so "Stay signed in" always reaches a live session. */
  var warnAfter = (idleSeconds > 180 ? idleSeconds - 90 : idleSeconds / 2) * 1000;
  var signingOut = false;
  var dialog = document.getElementById("idle-warning");
  var countdown = document.getElementById("idle-countdown");
  var stay = document.getElementById("idle-stay");
  var lastRequest = Date.now();
  var previousFocus = null;

  function draftForms() {
    return Array.prototype.slice.call(document.querySelectorAll("form[method=post]:not([data-keep-draft=off])"));
  }
  function formKey(form, index) { return form.id || (form.getAttribute("action") || "") + "#" + index; }
  function saveDrafts() {
    var drafts = {};
    draftForms().forEach(function (form, index) {
      var values = [];
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name || el.name === "csrf_token" || el.type === "password" || el.type === "hidden" || el.type === "submit") { return; }
        if ((el.type === "checkbox" || el.type === "radio")) { values.push([el.name, el.value, el.checked]); }
        else { values.push([el.name, el.value]); }
      });
      if (values.length) { drafts[formKey(form, index)] = values; }
    });
    if (Object.keys(drafts).length) { sessionStorage.setItem(userKey, JSON.stringify(drafts)); }
  }
  function restoreDrafts() {
    var saved = sessionStorage.getItem(userKey);
    if (!saved) { return; }
    sessionStorage.removeItem(userKey);
    var drafts = JSON.parse(saved);
    var forms = draftForms();
    Object.keys(drafts).forEach(function (key) {
      var form = forms.filter(function (candidate, index) { return formKey(candidate, index) === key; })[0];
      if (!form) { return; }
      drafts[key].forEach(function (entry) {
        Array.prototype.forEach.call(form.querySelectorAll("[name='" + CSS.escape(entry[0]) + "']"), function (el) {
          if (el.type === "checkbox" || el.type === "radio") { if (el.value === entry[1]) { el.checked = entry[2]; } }
          else { el.value = entry[1]; }
        });
      });
      var note = document.createElement("div");
      note.className = "notice";
      note.setAttribute("role", "status");
      note.textContent = "What you had typed before you were signed out has been put back. Check it, then save.";
      form.parentNode.insertBefore(note, form);
    });
  }
  restoreDrafts();

  function openWarning() {
    previousFocus = document.activeElement;
    dialog.hidden = false;
    stay.focus();
  }
  function closeWarning() {
    dialog.hidden = true;
    if (previousFocus && previousFocus.focus) { previousFocus.focus(); }
  }
  function signOutNow() {
    if (signingOut) { return; }
    signingOut = true;
    saveDrafts();
    var here = location.pathname + location.search;
    var headers = JSON.parse(body.getAttribute("hx-headers") || "{}");
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    /* End the session on the server too (an idle sign-out keeps the tab's saved draft). */
    fetch("/logout", { method: "POST", credentials: "same-origin", headers: headers, body: "reason=idle" })
      .catch(function () { return null; })
      .then(function () { location.assign("/login?idle=1&next=" + encodeURIComponent(here)); });
  }
  setInterval(function () {
    var idle = Date.now() - lastRequest;
    if (signingOut) { return; }
    if (idle >= idleSeconds * 1000) { signOutNow(); return; }
    if (idle >= warnAfter && dialog.hidden) { openWarning(); }
    if (!dialog.hidden) {
      var left = Math.max(0, Math.ceil((idleSeconds * 1000 - idle) / 1000));
      countdown.textContent = left + (left === 1 ? " second" : " seconds");
    }
  }, 1000);
  stay.addEventListener("click", function () {
    fetch("/account/ping", { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } }).then(function (response) {
      if (response.ok) { lastRequest = Date.now(); closeWarning(); } else { signOutNow(); }
    });
  });
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { stay.click(); }
    if (event.key === "Tab") { event.preventDefault(); stay.focus(); }
  });
  body.addEventListener("htmx:afterRequest", function () { lastRequest = Date.now(); });
  /* A form post that finds the session gone comes back to the sign-in page; keep the draft first. */
  document.addEventListener("submit", function () {
    if (Date.now() - lastRequest >= idleSeconds * 1000) { saveDrafts(); }
  });
}());
