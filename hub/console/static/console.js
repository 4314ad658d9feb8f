// Herald console: live audience counts, message preview, launch form and live stats.
// Plain JavaScript, no libraries; every request carries the session's CSRF token.
"use strict";
(() => {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const $ = (id) => document.getElementById(id);
  const DASH = "\u2013";
  const fmt = (n) => (n === null || n === undefined ? DASH : Number(n).toLocaleString("en-US"));

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const error = (data && data.error) || {};
      const detail = error.fields ? Object.values(error.fields)[0] : null;
      throw new Error(detail && !String(error.message).includes(detail) ? `${error.message}: ${detail}` : error.message || `HTTP ${res.status}`);
    }
    return data;
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  function el(name, attrs = {}, text = "") {
    const node = document.createElement(name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text) node.textContent = text;
    return node;
  }

  // Buttons with data-confirm ask first; rows with a .remove-row button can be removed.
  document.addEventListener("submit", (e) => {
    const button = e.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) e.preventDefault();
  });

  // --- segment builder ---------------------------------------------------------------------
  const FIELD_LABELS = {
    "attributes.": "attribute…", tags: "tags", last_active_at: "last active", created_at: "created",
    id: "user id", timezone: "timezone", locale: "locale", marketing_opt_in: "marketing opt-in",
    "device.platform": "device platform", "device.provider": "device provider",
    "device.environment": "device environment", "device.app_id": "device app id",
    "device.locale": "device locale", "device.timezone": "device timezone",
    "device.app_version": "app version", "device.registered_at": "device registered",
  };
  const OP_LABELS = {
    eq: "is", ne: "is not", in: "is one of", gt: ">", gte: "≥", lt: "<", lte: "≤", between: "between",
    exists: "exists", contains: "contains", within_days: "within days", older_than_days: "older than days",
  };
  const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?$/;

  function segmentBuilder() {
    const form = $("segment-form");
    if (!form) return;
    const schema = JSON.parse($("segment-schema").textContent);
    const rows = $("segment-rows");
    const match = $("segment-match");
    const textarea = $("segment-filter");
    const fields = ["attributes.", ...Object.keys(schema.fields)];
    const opsFor = (field) => (field.startsWith("attributes.") ? schema.attribute_ops : schema.fields[field] || []);
    let seq = 0;

    function scalar(field, raw) {
      if (!field.startsWith("attributes.")) return raw;
      if (NUMBER.test(raw)) return Number(raw);
      if (raw === "true" || raw === "false") return raw === "true";
      return raw;
    }

    function valueOf(field, op, raw) {
      raw = raw.trim();
      if (op === "exists") return !["false", "no", "0"].includes(raw.toLowerCase());
      if (raw === "") return undefined;
      if (field === "marketing_opt_in") return ["true", "yes", "1"].includes(raw.toLowerCase());
      if (op === "within_days" || op === "older_than_days") return NUMBER.test(raw) ? Number(raw) : raw;
      if (op === "in") return raw.split(",").map((s) => s.trim()).filter(Boolean).map((s) => scalar(field, s));
      if (op === "between") return raw.split(",").map((s) => scalar(field, s.trim()));
      return scalar(field, raw);
    }

    const shown = (value) => (Array.isArray(value) ? value.join(", ") : value === undefined ? "" : String(value));

    function fillOps(select, field, chosen) {
      select.replaceChildren(...opsFor(field).map((op) => el("option", { value: op }, OP_LABELS[op] || op)));
      if (chosen && opsFor(field).includes(chosen)) select.value = chosen;
    }

    function addRow(leaf = {}) {
      const row = el("div", { class: "filter-row" });
      const field = el("select", { "aria-label": "field", class: "field" });
      for (const name of fields) field.append(el("option", { value: name }, FIELD_LABELS[name] || name));
      const key = el("input", { type: "text", placeholder: "attribute, e.g. plan", "aria-label": "attribute", class: "attr-key" });
      const op = el("select", { "aria-label": "operator", class: "op" });
      const value = el("input", { type: "text", placeholder: "value", "aria-label": "value", class: "value" });
      const remove = el("button", { type: "button", class: "btn btn-quiet remove-row", "aria-label": "remove" }, "×");
      const name = leaf.field || "attributes.";
      field.value = name.startsWith("attributes.") ? "attributes." : name;
      key.value = name.startsWith("attributes.") ? name.slice("attributes.".length) : "";
      const toggleKey = () => {
        key.classList.toggle("hidden", field.value !== "attributes.");
        row.classList.toggle("no-key", field.value !== "attributes.");
      };
      fillOps(op, field.value, leaf.op || "eq");
      value.value = shown(leaf.value);
      toggleKey();
      field.addEventListener("change", () => { toggleKey(); fillOps(op, field.value, op.value); });
      row.append(field, key, op, value, remove);
      rows.append(row);
      return row;
    }

    function leafOf(row) {
      const field = row.querySelector(".field").value;
      const key = row.querySelector(".attr-key").value.trim();
      const name = field === "attributes." ? (key ? `attributes.${key}` : null) : field;
      const op = row.querySelector(".op").value;
      const value = valueOf(name || field, op, row.querySelector(".value").value);
      if (!name || value === undefined) return null; // still being typed
      return { field: name, op, value };
    }

    function fromRows() {
      const leaves = [...rows.querySelectorAll(".filter-row")].map(leafOf).filter(Boolean);
      textarea.value = JSON.stringify({ [match.value]: leaves });
      refresh();
    }

    function load(tree) {
      const kind = tree && typeof tree === "object" && Object.keys(tree).length === 1 ? Object.keys(tree)[0] : null;
      const flat = (kind === "all" || kind === "any") && Array.isArray(tree[kind]) && tree[kind].every((n) => n && n.field);
      $("segment-nested").classList.toggle("hidden", flat);
      rows.replaceChildren();
      if (!flat) {
        $("segment-json-box").open = true;
        return;
      }
      match.value = kind;
      tree[kind].forEach((leaf) => addRow(leaf));
    }

    const refresh = debounce(async () => {
      const mine = ++seq;
      $("count-state").textContent = "Counting…";
      let tree;
      try {
        tree = JSON.parse(textarea.value);
      } catch {
        showError("The filter JSON is not valid.");
        return;
      }
      try {
        const figures = await api("POST", "/console/api/segments/preview", { filter: tree });
        if (mine !== seq) return;
        $("count-users").textContent = fmt(figures.users);
        $("count-devices").textContent = fmt(figures.devices);
        $("count-opted-out").textContent = fmt(figures.opted_out);
        $("count-sample").replaceChildren(...figures.sample.map((id) => el("li", {}, id)));
        $("count-error").classList.add("hidden");
        $("count-state").textContent = `Exact counts, updated ${new Date().toLocaleTimeString()}`;
        form.dataset.users = String(figures.users);
        form.dataset.devices = String(figures.devices);
        form.dataset.filter = JSON.stringify(tree);
      } catch (err) {
        if (mine === seq) showError(err.message);
      }
    }, 300);

    function showError(message) {
      $("count-error").textContent = message;
      $("count-error").classList.remove("hidden");
      $("count-state").textContent = "";
      delete form.dataset.users;
    }

    let initial = { all: [] };
    try { initial = JSON.parse(textarea.value); } catch { /* shown by the first count */ }
    load(initial);
    if (!rows.children.length && $("segment-nested").classList.contains("hidden")) addRow();
    rows.addEventListener("input", fromRows);
    rows.addEventListener("change", fromRows);
    rows.addEventListener("click", (e) => {
      if (e.target.classList.contains("remove-row")) { e.target.closest(".filter-row").remove(); fromRows(); }
    });
    match.addEventListener("change", fromRows);
    textarea.addEventListener("input", () => {
      try { load(JSON.parse(textarea.value)); } catch { /* keep the rows until it parses */ }
      refresh();
    });
    $("add-row").addEventListener("click", () => { addRow().querySelector(".attr-key").focus(); });
    form.addEventListener("submit", () => {
      if (!$("segment-nested").classList.contains("hidden")) return;
      const leaves = [...rows.querySelectorAll(".filter-row")].map(leafOf).filter(Boolean);
      textarea.value = JSON.stringify({ [match.value]: leaves });
    });
    refresh();
  }

  // --- compose: translations and the personalised preview ----------------------------------
  function compose() {
    const form = $("compose-form");
    if (!form) return;
    const rows = $("locale-rows");
    $("add-locale").addEventListener("click", () => {
      rows.append($("locale-row-template").content.cloneNode(true));
      rows.lastElementChild.querySelector("input").focus();
    });
    rows.addEventListener("click", (e) => {
      if (e.target.classList.contains("remove-row")) { e.target.closest(".locale-row").remove(); preview(); }
    });
    let seq = 0;
    const preview = debounce(async () => {
      const mine = ++seq;
      const locales = [...rows.querySelectorAll(".locale-row")].map((row) =>
        [...row.querySelectorAll("input")].map((input) => input.value.trim()));
      const body = {
        title: $("title").value, body: $("body").value, locales,
        segment_id: $("campaign-segment").value, user_id: $("preview-user").value.trim(),
      };
      try {
        const shown = await api("POST", "/console/api/campaigns/render", body);
        if (mine !== seq) return;
        $("preview-title").textContent = shown.title || DASH;
        $("preview-body").textContent = shown.body;
        $("preview-meta").textContent = `As ${shown.user_id} (locale ${shown.locale || "unknown"}): the ${shown.variant} variant.`;
        $("preview-error").classList.add("hidden");
        $("preview").classList.remove("hidden");
      } catch (err) {
        if (mine !== seq) return;
        $("preview-error").textContent = err.message;
        $("preview-error").classList.remove("hidden");
        $("preview-meta").textContent = "";
      }
    }, 300);
    form.addEventListener("input", preview);
    form.addEventListener("change", preview);
    preview();
  }

  // --- launch form ---------------------------------------------------------------------------
  function launch() {
    const form = $("schedule-form");
    if (!form) return;
    const zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zoneName) $("at-timezone").value = zoneName;
    const toggle = () => {
      const kind = form.querySelector('input[name="kind"]:checked').value;
      form.querySelector(".when-at").classList.toggle("hidden", kind !== "at");
      form.querySelector(".when-local").classList.toggle("hidden", kind !== "local");
      $("launch").textContent = kind === "now" ? "Launch campaign" : "Schedule campaign";
    };
    form.addEventListener("change", toggle);
    toggle();
  }

  // --- live stats and the progress chart -----------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  const SERIES = [
    { key: "sent", label: "users sent", color: "#4f46e5" },
    { key: "delivered", label: "delivered", color: "#12805c" },
    { key: "skipped", label: "users skipped", color: "#98a2b3" },
  ];
  const FINAL = ["completed", "cancelled"];

  function svg(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(target, stats) {
    const W = 560, H = 220, L = 44, R = 14, T = 30, B = 26;
    const points = stats.progress.map((p) => ({ ...p, t: Date.parse(p.at) }));
    if (stats.status !== "draft" && stats.status !== "scheduled") points.push({ ...stats, t: Date.now() });
    const nodes = [];
    const top = Math.max(1, stats.targeted || 0, ...points.flatMap((p) => SERIES.map((s) => p[s.key] || 0)));
    const t0 = points.length ? points[0].t : 0;
    const t1 = points.length ? Math.max(points[points.length - 1].t, t0 + 1000) : 1;
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => H - B - (v / top) * (H - T - B);
    for (const v of [0, top / 2, top]) {
      nodes.push(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e4e7ec" }));
      if (points.length) {
        const label = Number.isInteger(v) ? fmt(v) : v.toLocaleString("en-US", { maximumFractionDigits: 1 });
        nodes.push(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, label));
      }
    }
    SERIES.forEach((s, i) => {
      const lx = L + i * 120;
      nodes.push(svg("rect", { x: lx, y: 8, width: 10, height: 10, rx: 2, fill: s.color }));
      nodes.push(svg("text", { x: lx + 15, y: 17 }, s.label));
    });
    if (!points.length) {
      nodes.push(svg("text", { x: W / 2, y: H / 2 + 10, "text-anchor": "middle" }, "No sends yet"));
    } else {
      const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      nodes.push(svg("text", { x: L, y: H - 6 }, clock(t0)));
      nodes.push(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, clock(t1)));
      for (const s of SERIES) {
        const coords = points.map((p) => `${x(p.t).toFixed(1)},${y(p[s.key] || 0).toFixed(1)}`);
        if (points.length > 1) {
          nodes.push(svg("polyline", { points: coords.join(" "), fill: "none", stroke: s.color, "stroke-width": 2.5, "stroke-linejoin": "round" }));
        }
        const last = points[points.length - 1];
        nodes.push(svg("circle", { cx: x(last.t), cy: y(last[s.key] || 0), r: 3.5, fill: s.color }));
      }
    }
    target.replaceChildren(...nodes);
  }

  function stats() {
    const box = $("campaign-stats");
    if (!box) return;
    const id = box.dataset.campaignId;

    function draw(s) {
      for (const node of box.querySelectorAll("[data-stat]")) node.textContent = fmt(s[node.dataset.stat]);
      const handled = (s.sent || 0) + (s.skipped || 0);
      const share = s.status === "completed" ? 1 : s.targeted ? Math.min(1, handled / s.targeted) : 0;
      $("progress-bar").style.width = `${Math.round(share * 100)}%`;
      $("progress-text").textContent = s.targeted === null
        ? "The audience is counted when the campaign starts."
        : `${fmt(handled)} of ${fmt(s.targeted)} users handled · ${fmt(s.pending)} deliveries pending`;
      const badge = $("campaign-status");
      badge.textContent = s.status;
      badge.className = `badge badge-${s.status}`;
      const reasons = Object.entries(s.skipped_reasons || {});
      $("skip-reasons").replaceChildren(...(reasons.length
        ? reasons.map(([why, n]) => el("li", {}, `${why.replace(/_/g, " ")}: ${fmt(n)}`))
        : [el("li", { class: "muted" }, "none")]));
      chart($("stats-chart"), s);
      box.dataset.status = s.status;
      box.dataset.delivered = String(s.delivered);
      box.dataset.sent = String(s.sent);
      if (FINAL.includes(s.status)) {
        const cancel = $("cancel");
        if (cancel) cancel.closest("form").remove();
      }
    }

    async function poll() {
      let s = null;
      try {
        s = await api("GET", `/console/api/campaigns/${id}/stats`);
        draw(s);
      } catch { /* try again */ }
      if (!s || !FINAL.includes(s.status)) setTimeout(poll, 1000);
    }

    const first = JSON.parse($("stats-data").textContent);
    draw(first);
    if (!FINAL.includes(first.status) && first.status !== "draft") setTimeout(poll, 1000);
  }

  segmentBuilder();
  compose();
  launch();
  stats();
})();
