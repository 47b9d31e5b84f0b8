// hegelion review: keyboard review of pairs, labels saved without a page load. No library; the pages work without it.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const csrf = meta("csrf-token");
  const page = document.body.dataset.page;
  const LABELLER_KEY = "hegelion-review-labeller";

  // -- the labeller name, remembered in this browser ------------------------------------------------------------
  const labeller = $("#labeller");
  if (labeller) {
    const saved = localStorage.getItem(LABELLER_KEY);
    if (saved !== null && !labeller.value) labeller.value = saved;
    const sync = () => $$(".labeller-field").forEach((f) => { f.value = labeller.value; });
    labeller.addEventListener("change", () => { localStorage.setItem(LABELLER_KEY, labeller.value); sync(); });
    sync();
  }

  // -- help --------------------------------------------------------------------------------------------------------
  const help = $("#help");
  const toggleHelp = () => { if (help) help.hidden = !help.hidden; };
  const helpButton = $("#help-toggle");
  if (helpButton) helpButton.addEventListener("click", toggleHelp);

  let toastTimer = null;
  function toast(text, isError) {
    let el = $("#toast");
    if (!el) { el = document.createElement("div"); el.id = "toast"; document.body.appendChild(el); }
    el.className = "toast" + (isError ? " error" : "");
    el.textContent = text;  // text, never HTML
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, isError ? 6000 : 1500);
  }

  const typing = (el) => el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
    (el.tagName === "INPUT" && !["button", "submit", "checkbox"].includes(el.type)));
  const go = (sel) => { const a = $(sel); if (a && a.href) { window.location.href = a.href; return true; } return false; };

  // -- the list ----------------------------------------------------------------------------------------------------
  function listKeys(event) {
    const rows = $$("tr.row[data-href]");
    let i = rows.findIndex((r) => r.classList.contains("selected"));
    const select = (j) => {
      if (!rows.length) return;
      j = Math.max(0, Math.min(rows.length - 1, j));
      rows.forEach((r) => r.classList.remove("selected"));
      rows[j].classList.add("selected");
      rows[j].scrollIntoView({ block: "nearest" });
    };
    switch (event.key) {
      case "j": case "ArrowDown": select(i + 1); break;
      case "k": case "ArrowUp": select(i < 0 ? 0 : i - 1); break;
      case "Enter": case "o": if (i >= 0) window.location.href = rows[i].dataset.href; else return false; break;
      case "n": return go("#next-page");
      case "p": return go("#prev-page");
      default: return false;
    }
    return true;
  }
  if (page === "list") {
    $$("tr.row[data-href]").forEach((row) => row.addEventListener("click", (e) => {
      if (e.target.tagName !== "A") window.location.href = row.dataset.href;
    }));
  }

  // -- a trace: pairs and labels -----------------------------------------------------------------------------------
  const pairs = $$("article.pair");
  let current = 0;
  function focusPair(i, scroll = true) {
    if (!pairs.length) return;
    current = Math.max(0, Math.min(pairs.length - 1, i));
    pairs.forEach((p, k) => p.classList.toggle("current", k === current));
    if (scroll) pairs[current].scrollIntoView({ block: "nearest", behavior: "instant" });
  }
  if (page === "trace" && pairs.length) {
    const firstOpen = pairs.findIndex((p) => !p.dataset.decision);
    focusPair(firstOpen < 0 ? 0 : firstOpen, false);
    pairs.forEach((p, k) => p.addEventListener("click", () => focusPair(k, false)));
  }

  function render(card, label) {
    const decision = label.decision || "";
    const edited = label.chosen !== null && label.chosen !== undefined;
    card.dataset.decision = decision;
    card.className = card.className.replace(/\bdecision-\S+/g, "").replace(/\bedited\b/g, "").trim();
    card.classList.add("decision-" + (decision || "none"));
    if (edited) card.classList.add("edited");
    $('[data-role="state"]', card).textContent =
      decision ? decision + (edited ? " + edited" : "") : (label.note ? "note only" : "not reviewed");
    const when = (label.created_at || "").replace("T", " ").slice(0, 19);
    $('[data-role="by"]', card).textContent = (label.labeller ? "by " + label.labeller + " " : "") + "at " + when;
    $('[data-role="save"]', card).value = decision;
  }

  async function saveLabel(card, decision) {
    const form = $("form.label-form", card);
    const body = new URLSearchParams();
    body.set("pair", card.dataset.pair);
    body.set("decision", decision);
    body.set("chosen", $('[data-role="edit"]', card).value);
    body.set("note", $('[data-role="note"]', card).value);
    body.set("labeller", labeller ? labeller.value : "");
    const base = $('[data-role="base"]', card);
    const conflict = $('[data-role="conflict"]', card);
    if (base) body.set("base", base.value);
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST", body, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      });
    } catch (err) {
      toast("Not saved: " + err, true);
      return false;
    }
    if (response.status === 409) {
      // Another reviewer labelled this pair since the page was loaded: show theirs, and send the next decision
      // from their version (a second decision replaces it knowingly).
      const data = await response.json();
      if (data.label) render(card, data.label);
      if (base) base.value = data.version;
      if (conflict) { conflict.textContent = data.conflict; conflict.hidden = false; }
      toast("Not saved: another reviewer changed this pair", true);
      return false;
    }
    if (!response.ok) {
      toast("Not saved: " + (await response.text()).trim(), true);
      return false;
    }
    const data = await response.json();
    if (base) base.value = data.version;
    if (conflict) conflict.hidden = true;
    render(card, data.label);
    refreshRows();
    toast("Saved: " + (data.label.decision || "no decision"));
    return true;
  }

  // The "what an export writes" section follows the labels: fetch this page again and take that section from it.
  async function refreshRows() {
    const rows = $("#rows");
    if (!rows) return;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("#rows");
      if (fresh) rows.replaceChildren(...fresh.childNodes);
    } catch (err) {
      // the section keeps its old content; a reload shows the new one
    }
  }

  async function decide(decision) {
    const card = pairs[current];
    if (!card) return;
    if (await saveLabel(card, decision)) {
      if (decision && current < pairs.length - 1) focusPair(current + 1);
      else if (decision && current === pairs.length - 1) nextTraceOrStay();
    }
  }

  function nextTraceOrStay() {
    const older = $("#older");
    if (older) setTimeout(() => { window.location.href = older.href; }, 250);
  }

  // Buttons submit with fetch too (the form posts itself when the script is off).
  pairs.forEach((card, k) => {
    $("form.label-form", card).addEventListener("submit", (event) => {
      event.preventDefault();
      const button = event.submitter;
      focusPair(k, false);
      saveLabel(card, button ? button.value : card.dataset.decision || "");
    });
    ["edit", "note"].forEach((role) => {
      $(`[data-role="${role}"]`, card).addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          const decision = card.dataset.decision || (role === "edit" ? "accept" : "");
          saveLabel(card, decision).then((ok) => { if (ok) event.target.blur(); });
        } else if (event.key === "Escape") {
          event.target.blur();
        }
      });
    });
  });

  function traceKeys(event) {
    const card = pairs[current];
    switch (event.key) {
      case "j": case "ArrowDown":
        if (current < pairs.length - 1) focusPair(current + 1); else return go("#older");
        break;
      case "k": case "ArrowUp":
        if (current > 0) focusPair(current - 1); else return go("#newer");
        break;
      case "n": return go("#older");
      case "p": return go("#newer");
      case "g": return go("#back");
      case "a": decide("accept"); break;
      case "r": decide("reject"); break;
      case "s": decide("swap"); break;
      case "u": if (card) saveLabel(card, ""); break;
      case "e": {
        if (!card) return false;
        const edit = $('[data-role="edit"]', card);
        if (!edit.value) edit.value = $('[data-role="chosen"]', card).textContent;
        edit.focus();
        break;
      }
      case "c": if (card) $('[data-role="note"]', card).focus(); else return false; break;
      default: return false;
    }
    return true;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(document.activeElement)) {
      if (event.key === "Escape") document.activeElement.blur();
      return;
    }
    if (event.key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (event.key === "/") { const s = $("#search"); if (s) { s.focus(); s.select(); event.preventDefault(); } return; }
    const handled = page === "list" ? listKeys(event) : page === "trace" ? traceKeys(event) : false;
    if (handled) event.preventDefault();
  });
})();
