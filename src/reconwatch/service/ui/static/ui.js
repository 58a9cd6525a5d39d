// reconwatch triage UI: keyboard navigation, live updates (server-sent events) and actions
// through the JSON API. Shipped in the package; no framework, no CDN.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const live = (text) => { const el = $("#live"); if (el) el.textContent = text; };
  const analyst = () => {
    const el = $("#analyst");
    return (el && el.value.trim()) || "analyst";
  };
  const who = $("#analyst");
  if (who) {
    who.value = localStorage.getItem("reconwatch.analyst") || who.value;
    who.addEventListener("change", () => localStorage.setItem("reconwatch.analyst", analyst()));
  }
  async function api(method, url, body) {
    const init = { method, headers: { "Content-Type": "application/json" } };
    if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
    const res = await fetch(url, init);
    let doc = null;
    try { doc = await res.json(); } catch (e) { doc = null; }
    if (!res.ok) {
      const reason = doc && doc.error ? doc.error.reason : res.statusText;
      throw new Error(reason);
    }
    return doc;
  }

  // -- the queue ---------------------------------------------------------------------------
  const rows = $("#rows");
  if (rows) {
    const current = () => document.activeElement && document.activeElement.closest("tbody tr[data-id]");
    const all = () => $$("tr[data-id]", rows);
    const move = (step) => {
      const list = all();
      if (!list.length) return;
      const at = list.indexOf(current());
      const next = list[Math.max(0, Math.min(list.length - 1, at < 0 ? 0 : at + step))];
      next.focus();
    };
    const picked = () => {
      const ids = $$("input.pick:checked", rows).map((c) => c.value);
      const row = current();
      return ids.length ? ids : row ? [row.dataset.id] : [];
    };
    async function setStatus(status, ids) {
      if (!ids.length) { live("Select alerts first (x)."); return; }
      try {
        const doc = await api("POST", "/api/alerts/_status", { ids, status, user: analyst() });
        live(`${doc.updated.length} alert(s) set to ${status}.`);
        await refresh();
      } catch (err) { live(`Not changed: ${err.message}`); }
    }
    document.addEventListener("keydown", (ev) => {
      const tag = ev.target.tagName;
      if ((tag === "INPUT" && ev.target.type !== "checkbox") || tag === "SELECT" || tag === "TEXTAREA") return;
      const row = current();
      if (ev.key === "j" || ev.key === "ArrowDown") { move(1); ev.preventDefault(); }
      else if (ev.key === "k" || ev.key === "ArrowUp") { move(-1); ev.preventDefault(); }
      else if ((ev.key === "Enter" || ev.key === "o") && row && ev.target.tagName !== "A") { location.href = row.dataset.href; ev.preventDefault(); }
      else if (ev.key === "x" && row) { const c = $("input.pick", row); c.checked = !c.checked; row.classList.toggle("picked", c.checked); ev.preventDefault(); }
      else if (ev.key === "a") { setStatus("acknowledged", picked()); }
      else if (ev.key === "c") { setStatus("closed", picked()); }
      else if (ev.key === "/") { const f = $("#f-host"); if (f) { f.focus(); ev.preventDefault(); } }
    });
    rows.addEventListener("change", (ev) => {
      const row = ev.target.closest("tr");
      if (row) row.classList.toggle("picked", ev.target.checked);
    });
    const pickAll = $("#pick-all");
    if (pickAll) pickAll.addEventListener("change", () => $$("input.pick", rows).forEach((c) => { c.checked = pickAll.checked; }));
    $$("button[data-bulk]").forEach((b) => b.addEventListener("click", () => setStatus(b.dataset.bulk, picked())));
    let shown = Number($("#queue").dataset.total);
    async function refresh() {
      const focused = current();
      const focusId = focused ? focused.dataset.id : null;
      const doc = await api("GET", "/ui/queue" + location.search);
      rows.innerHTML = doc.rows;
      $("#counts").innerHTML = doc.tabs;
      $("#shown").textContent = doc.caption;
      if (doc.total > shown) live(`${doc.total - shown} new alert(s).`);
      shown = doc.total;
      $("#queue").dataset.total = String(doc.total);
      if (focusId) { const again = $(`tr[data-id="${CSS.escape(focusId)}"]`, rows); if (again) again.focus(); }
    }
    if (window.EventSource && !$("#queue").dataset.first.match(/^[1-9]/)) {
      const source = new EventSource("/ui/stream");
      // The alerts' state (count and statuses) as drawn; a reconnect resends the same one.
      let state = $("#queue").dataset.state;
      source.addEventListener("alerts", (ev) => {
        if (ev.data === state) return;
        state = ev.data;
        refresh().catch(() => {});
      });
    }
  }

  // -- one alert ---------------------------------------------------------------------------
  const actions = $(".actions[data-alert]");
  if (actions) {
    const id = actions.dataset.alert;
    $$("button[data-status]", actions).forEach((b) => b.addEventListener("click", async () => {
      try {
        const doc = await api("POST", `/api/alerts/${encodeURIComponent(id)}/_status`, { status: b.dataset.status, user: analyst() });
        $("#status").textContent = `${doc["kibana.alert.workflow_status"]} (by ${doc["kibana.alert.workflow_user"]} at ${doc["kibana.alert.workflow_status_updated_at"]})`;
        live(`Alert ${b.dataset.status}.`);
      } catch (err) { live(`Not changed: ${err.message}`); }
    }));
    if (window.EventSource) {
      // A status set elsewhere (another tab, the API) shows here too.
      const source = new EventSource("/ui/stream");
      let state = actions.dataset.state;  // as the page was drawn
      source.addEventListener("alerts", async (ev) => {
        if (ev.data === state) return;
        state = ev.data;
        try {
          const doc = await api("GET", `/api/alerts/${encodeURIComponent(id)}`);
          const text = `${doc["kibana.alert.workflow_status"]} (by ${doc["kibana.alert.workflow_user"]} at ${doc["kibana.alert.workflow_status_updated_at"]})`;
          if ($("#status").textContent !== text) { $("#status").textContent = text; live(`Alert now ${doc["kibana.alert.workflow_status"]}.`); }
        } catch (err) { /* the next change tries again */ }
      });
    }
    const guide = $(".guide[data-alert]");
    if (guide) guide.addEventListener("change", async (ev) => {
      const box = ev.target;
      if (!box.dataset || box.dataset.step === undefined) return;
      try {
        const doc = await api("POST", `/api/alerts/${encodeURIComponent(id)}/guide`, { step: Number(box.dataset.step), done: box.checked, user: analyst() });
        const done = Object.values(doc.steps).filter((s) => s.done).length;
        const total = $$("input[data-step]", guide).length;
        $("#guide-progress").textContent = `${done} of ${total} steps done`;
        live("Guide step saved.");
      } catch (err) { box.checked = !box.checked; live(`Not saved: ${err.message}`); }
    });
    const form = $("#exception-form");
    if (form) form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const ops = { "is": ["match", "included"], "is not": ["match", "excluded"], "matches": ["wildcard", "included"] };
      const entries = $$("fieldset.entry", form).filter((f) => $("input[name=use]", f).checked).map((f) => {
        const [type, operator] = ops[$("select[name=op]", f).value];
        return { field: $("input[name=field]", f).value.trim(), type, operator, value: $("input[name=value]", f).value };
      });
      const body = {
        name: $("#ex-name").value, entries, user: analyst(),
        close_alert: $("#ex-close-alert").checked, close_matching: $("#ex-close-matching").checked,
      };
      if ($("#ex-comment").value.trim()) body.comment = $("#ex-comment").value;
      if ($("#ex-expire").value.trim()) body.expire_time = $("#ex-expire").value.trim();
      if ($("#ex-list").value) body.list_id = $("#ex-list").value;
      try {
        const doc = await api("POST", `/api/alerts/${encodeURIComponent(id)}/_exception`, body);
        $("#ex-result").textContent = `Exception added to ${doc.list_id}; ${doc.closed.length} alert(s) closed.`;
      } catch (err) { $("#ex-result").textContent = `Not added: ${err.message}`; }
    });
  }

  // -- rules -------------------------------------------------------------------------------
  $$("[data-rule] input[data-setting]").forEach((box) => box.addEventListener("change", async () => {
    const rule = box.closest("[data-rule]").dataset.rule;
    try {
      await api("PATCH", `/api/rules/${encodeURIComponent(rule)}`, { [box.dataset.setting]: box.checked });
      live(`${box.dataset.setting} ${box.checked ? "on" : "off"}.`);
    } catch (err) { box.checked = !box.checked; live(`Not changed: ${err.message}`); }
  }));
  $$("form.run-now").forEach((form) => form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $(".run-result", form);
    try {
      const doc = await api("POST", `/api/rules/${encodeURIComponent(form.dataset.rule)}/_run`, { start: form.start.value, end: form.end.value });
      out.textContent = `${doc.runs.length} run(s), ${doc.alerts.length} new alert(s).`;
    } catch (err) { out.textContent = `Not run: ${err.message}`; }
  }));

  // -- exceptions --------------------------------------------------------------------------
  const newList = $("#new-list");
  if (newList) newList.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const doc = await api("POST", "/api/exceptions", { name: $("#nl-name").value, description: $("#nl-desc").value, user: analyst() });
      location.href = `/exceptions/${encodeURIComponent(doc.list_id)}`;
    } catch (err) { $("span[role=status]", newList).textContent = err.message; }
  });
  const imp = $("#import-form");
  if (imp) imp.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("#import-file").files[0];
    if (!file) return;
    const q = new URLSearchParams({ user: analyst(), overwrite: String($("#import-overwrite").checked) });
    if ($("#import-rule").value) q.set("rule_id", $("#import-rule").value);
    try {
      const doc = await api("POST", `/api/exceptions/_import?${q}`, await file.text());
      $("#import-result").textContent = JSON.stringify(doc, null, 1);
    } catch (err) { $("#import-result").textContent = err.message; }
  });
  $$("form.item").forEach((form) => {
    const status = $("span[role=status]", form);
    const base = `/api/exceptions/${encodeURIComponent(form.dataset.list)}/items`;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let entries;
      try { entries = JSON.parse(form.entries.value); } catch (err) { status.textContent = `Entries are not JSON: ${err.message}`; return; }
      const body = { name: form.name.value, entries, expire_time: form.expire_time.value || null, user: analyst() };
      try {
        if (form.dataset.item) await api("PUT", `${base}/${encodeURIComponent(form.dataset.item)}`, body);
        else await api("POST", base, body);
        location.reload();
      } catch (err) { status.textContent = err.message; }
    });
    const del = $("button[data-delete]", form);
    if (del) del.addEventListener("click", async () => {
      try { await api("DELETE", `${base}/${encodeURIComponent(form.dataset.item)}`); location.reload(); }
      catch (err) { status.textContent = err.message; }
    });
  });
})();
