// Coconut Center: the live parts of the pages. Everything that comes from
// the daemon is put into the page with textContent or attribute setters,
// never as HTML.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const csrf = $('meta[name="csrf-token"]')?.content || "";
  const body = document.body;
  const pageName = body.dataset.page;

  // h builds an element: strings become text nodes, never markup.
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "style") Object.assign(el.style, v); // CSSOM: inline style attributes are refused by the CSP
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("data-")) el.dataset[k.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  // --- formatting ---
  const nf = new Intl.NumberFormat();
  const fmtInt = (n) => nf.format(n);
  const fmtPct = (f) => f.toFixed(1) + "%";
  function fmtBytes(n) {
    if (n < 0) return "–";
    if (n < 1024) return n + " B";
    const u = "KMGTPE"; let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
    return n.toFixed(1) + " " + u[i] + "iB";
  }
  function ago(t) {
    const d = (Date.now() - new Date(t).getTime()) / 1000;
    if (d < 1) return "now";
    if (d < 60) return Math.floor(d) + "s ago";
    if (d < 3600) return Math.floor(d / 60) + "m ago";
    if (d < 86400) return Math.floor(d / 3600) + "h ago";
    return new Date(t).toLocaleDateString();
  }
  const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
  // tailPath: the last two parts of a long path (as pages.go's tailPath).
  function tailPath(s) {
    if (s.length <= 40 || s[0] !== "/") return s;
    const p = s.split("/");
    return p.length <= 3 ? s : "…/" + p.slice(-2).join("/");
  }
  const stateKey = (s) => s.toLowerCase().replace(/-/g, "");
  const glyphKey = (c) => (["planner", "researcher", "coder", "reviewer"].includes(c) ? c : "other");

  // --- toasts ---
  function toast(msg, err) {
    const box = $("#toast");
    const m = h("div", { class: "msg" + (err ? " err" : "") , text: msg });
    box.append(m);
    setTimeout(() => m.remove(), err ? 9000 : 4500);
  }

  // --- calls ---
  async function post(url, payload) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: payload ? JSON.stringify(payload) : "",
    });
    let data = null;
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) throw new Error((data && data.error) || r.status + " " + r.statusText);
    return data;
  }
  async function get(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 401) { location.reload(); throw new Error("logged out"); }
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    return r.json();
  }

  // --- top bar ---
  let denies = null;
  function setText(id, v) { const el = document.getElementById(id); if (el && el.textContent !== String(v)) el.textContent = v; }
  function bump(id) {
    const el = document.getElementById(id);
    if (!el) return;
    el.classList.remove("bump"); void el.offsetWidth; el.classList.add("bump");
  }
  function summary(s) {
    setText("stat-active", fmtInt(s.active));
    setText("stat-agents", fmtInt(s.agents));
    setText("stat-tokens", fmtInt(s.tokens));
    const costBox = $("#stat-cost-box");
    if (s.cost !== undefined && s.cost !== null) { costBox.hidden = false; setText("stat-cost", s.cost.toFixed(2)); }
    else costBox.hidden = true;
    if (denies === null || s.denies > denies) { if (denies !== null) bump("stat-denies"); denies = s.denies; }
    setText("stat-denies", fmtInt(denies));
    const al = $("#alarm");
    al.hidden = !s.alarm;
    if (s.alarm) setText("alarm", s.alarm);
  }
  // denySeen counts a deny from the stream; the counter is redrawn once a
  // frame and bumps at most every 600 ms, however fast denies come.
  let denyQueued = false, lastBump = 0;
  function denySeen() {
    if (denies === null) denies = Number(($("#stat-denies").textContent || "0").replace(/\D/g, "")) || 0;
    denies++;
    if (denyQueued) return;
    denyQueued = true;
    requestAnimationFrame(() => {
      denyQueued = false;
      setText("stat-denies", fmtInt(denies));
      const now = performance.now();
      if (now - lastBump > 600) { lastBump = now; bump("stat-denies"); }
    });
  }

  // --- the live stream ---
  const shown = (window.__coconutShown = window.__coconutShown || {}); // seq -> ms the row reached the page (benchmarks)
  const handlers = { row: [], agents: [] };
  function connect() {
    const live = $("#live");
    const q = body.dataset.stream || "";
    const es = new EventSource("api/stream" + (q ? "?" + q : ""));
    es.addEventListener("open", () => { live.className = "live on"; live.setAttribute("aria-label", "Live updates: connected"); });
    es.addEventListener("error", () => { live.className = "live off"; live.setAttribute("aria-label", "Live updates: reconnecting"); });
    es.addEventListener("summary", (e) => summary(JSON.parse(e.data)));
    es.addEventListener("agents", (e) => { const list = JSON.parse(e.data); handlers.agents.forEach((f) => f(list)); });
    es.addEventListener("row", (e) => {
      const r = JSON.parse(e.data);
      if (r.result === "deny") denySeen();
      handlers.row.forEach((f) => f(r));
    });
  }

  // --- rows tables (audit feed, agent page) ---
  function rowEl(r) {
    const tr = h("tr", { class: (r.result === "deny" ? "deny " : "") + "fresh", "data-seq": r.seq, "data-href": "review/" + r.seq },
      h("td", { class: "num" }, h("a", { href: "review/" + r.seq, "aria-label": "Review row " + r.seq, text: r.seq })),
      h("td", {}, h("time", { datetime: r.time, text: clock(r.time) })),
      h("td", { class: "num opt" }, r.aid ? h("a", { href: "agents/" + r.aid, text: r.aid }) : "daemon"),
      h("td", {}, h("span", { class: "rtype", text: r.type })),
      h("td", {}, h("code", { text: r.cap || "" })),
      h("td", { class: "obj", text: r.object || "" }),
      h("td", {}, r.result ? h("span", { class: "result r-" + r.result, text: r.result }) : ""));
    return tr;
  }
  function liveRows(limit) {
    const table = $("table[data-live-rows]");
    if (!table) return;
    const tbody = table.tBodies[0];
    const pause = $("#pause");
    let pending = [];
    let queued = false;
    const flush = () => {
      queued = false;
      if (pause && pause.checked) { pending = []; return; }
      const frag = document.createDocumentFragment();
      const now = Date.now();
      const calm = pending.length <= 3; // highlight new rows only when they come one by one
      for (let i = pending.length - 1; i >= 0; i--) {
        const tr = rowEl(pending[i]);
        tr.dataset.live = "1"; // came over the stream, not with the page
        if (!calm) tr.classList.remove("fresh");
        frag.append(tr);
        shown[pending[i].seq] = now;
      }
      pending = [];
      tbody.prepend(frag);
      while (tbody.rows.length > limit) tbody.deleteRow(-1);
      const empty = table.parentElement.nextElementSibling;
      if (empty && empty.classList.contains("empty")) empty.hidden = true;
    };
    let newest = Math.max(0, ...Array.from(tbody.rows, (tr) => Number(tr.dataset.seq) || 0));
    handlers.row.push((r) => {
      if (r.seq <= newest) return; // already on the page (a reconnect repeats nothing, but the first page may overlap)
      newest = r.seq;
      pending.push(r);
      if (pending.length > limit) pending = pending.slice(-limit);
      if (!queued) { queued = true; requestAnimationFrame(flush); }
    });
  }

  // --- the agents table ---
  function agentsTable() {
    const tbody = $("#agents-body");
    if (!tbody) return;
    let list = null; // null until the first snapshot: keep the server's rows
    let sortKey = "aid", sortDir = 1;
    const filter = $("#filter"), stateSel = $("#state-filter"), ended = $("#show-ended");
    const byAID = new Map();
    const val = (a, k) => (k === "last" ? (a.last ? a.last.seq : 0) : a[k]);
    function row(a) {
      const tr = h("tr", { "data-aid": a.aid, "data-href": "agents/" + a.aid },
        h("td", { class: "num" }, h("a", { href: "agents/" + a.aid, text: a.aid })),
        h("td", {}, h("a", { class: "name", href: "agents/" + a.aid, title: "runs as " + a.user, text: a.name })),
        h("td", { class: "opt" }, h("span", { class: "glyph g-" + glyphKey(a.class) + (a.state === "Active" ? " pulse" : ""), "aria-hidden": "true" }), a.class),
        h("td", {}, h("span", { class: "state s-" + stateKey(a.state), text: a.state })),
        h("td", { class: "num narrow-opt", text: fmtPct(a.cpu) }),
        h("td", { class: "num opt", text: fmtBytes(a.memory) }),
        h("td", { class: "num opt", text: fmtInt(a.tokens_in) }),
        h("td", { class: "num opt", text: fmtInt(a.tokens_out) }),
        h("td", { class: "num", text: fmtInt(a.denies) }),
        h("td", { class: "last" }, a.last ? [h("span", { class: "rtype r-" + (a.last.result || "none"), text: a.last.type }), " ",
          h("span", { class: "obj", title: a.last.object || "", text: tailPath(a.last.object || "") }), " ", h("time", { datetime: a.last.time, text: ago(a.last.time) })] : ""));
      return tr;
    }
    function render() {
      if (!list) return;
      const f = filter.value.trim().toLowerCase(), st = stateSel.value;
      const sel = $("tr.sel", tbody)?.dataset.aid;
      const shownList = list.filter((a) => (!st || a.state === st) && (!f ||
        [String(a.aid), a.name, a.class, a.state, a.user, a.workload || ""].some((s) => s.toLowerCase().includes(f))));
      shownList.sort((a, b) => {
        const x = val(a, sortKey), y = val(b, sortKey);
        return (x < y ? -1 : x > y ? 1 : a.aid - b.aid) * sortDir;
      });
      const frag = document.createDocumentFragment();
      for (const a of shownList) {
        const tr = row(a);
        if (String(a.aid) === sel) tr.classList.add("sel");
        frag.append(tr);
      }
      tbody.replaceChildren(frag);
      $("#agents-empty").hidden = shownList.length > 0;
      setText("agents-count", shownList.length === list.length ? list.length + " agents" : shownList.length + " of " + list.length + " agents");
    }
    // Renders are coalesced: at most one a frame, and at most four a
    // second when rows stream in fast.
    let queued = false, lastRender = 0;
    const later = () => {
      if (queued) return;
      queued = true;
      const wait = Math.max(0, 250 - (performance.now() - lastRender));
      setTimeout(() => requestAnimationFrame(() => { queued = false; lastRender = performance.now(); render(); }), wait);
    };
    function take(l) { list = l; byAID.clear(); for (const a of l) byAID.set(a.aid, a); later(); }
    handlers.agents.push((l) => { if (!ended.checked) take(l); });
    handlers.row.push((r) => {
      const a = byAID.get(r.aid);
      if (!a) return;
      a.last = { seq: r.seq, time: r.time, type: r.type, cap: r.cap, object: r.object, result: r.result };
      if (r.result === "deny") a.denies++;
      shown[r.seq] = Date.now();
      later();
    });
    async function all() { if (ended.checked) { try { take(await get("api/agents?all=1")); } catch (e) { /* retried */ } } }
    setInterval(all, 2000);
    ended.addEventListener("change", async () => { if (ended.checked) all(); else take(await get("api/agents")); });
    const soon = () => requestAnimationFrame(render); // what the user does is drawn at once
    filter.addEventListener("input", soon);
    stateSel.addEventListener("change", soon);
    for (const b of $$("th button[data-sort]")) {
      b.addEventListener("click", () => {
        const k = b.dataset.sort;
        if (sortKey === k) sortDir = -sortDir; else { sortKey = k; sortDir = ["cpu", "memory", "tokens_in", "tokens_out", "denies", "last"].includes(k) ? -1 : 1; }
        for (const th of $$("th[aria-sort]")) th.setAttribute("aria-sort", "none");
        b.parentElement.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        if (!list) take(Array.from(byAID.values()));
        render();
      });
    }
    get("api/agents").then((l) => { if (!list) take(l); }).catch(() => {});
  }

  // --- agent state on the agent and review pages ---
  function agentState() {
    const el = $("#agent-state");
    const aid = Number(($(".agent") || $("[data-aid]"))?.dataset.aid || 0);
    if (!el) return;
    handlers.agents.push((l) => {
      const a = l.find((x) => x.aid === aid);
      if (a && el.textContent !== a.state) { el.textContent = a.state; el.className = "state s-" + stateKey(a.state); }
    });
  }

  // --- actions ---
  function actions() {
    for (const b of $$("button[data-action]")) {
      b.addEventListener("click", async () => {
        if (b.dataset.confirm && !b.classList.contains("armed")) {
          b.classList.add("armed");
          b.dataset.label = b.textContent;
          b.textContent = "Confirm " + b.dataset.label.toLowerCase();
          b.setAttribute("aria-label", b.dataset.confirm + " Press again to confirm.");
          toast(b.dataset.confirm + " Press again to confirm.");
          setTimeout(() => { if (b.classList.contains("armed")) { b.classList.remove("armed"); b.textContent = b.dataset.label; b.removeAttribute("aria-label"); } }, 5000);
          return;
        }
        b.classList.remove("armed");
        const act = b.dataset.action, aid = b.dataset.aid;
        let cap = b.dataset.cap;
        if (b.dataset.capFrom) cap = document.getElementById(b.dataset.capFrom).value;
        b.disabled = true; b.classList.add("busy");
        try {
          await post("api/agents/" + encodeURIComponent(aid) + "/" + act, cap ? { caps: [cap] } : null);
          toast(act[0].toUpperCase() + act.slice(1) + ": done, recorded in the audit chain (via center).");
          setTimeout(() => location.reload(), 700);
        } catch (e) {
          toast(act + " refused: " + e.message, true);
          b.disabled = false; b.classList.remove("busy");
          if (b.dataset.label) b.textContent = b.dataset.label;
        }
      });
    }
  }

  // --- the review page's proof: checkpoints are signed every second ---
  function proof() {
    const el = $("#proof");
    if (!el || el.dataset.pending !== "true") return;
    let tries = 0;
    const poll = async () => {
      tries++;
      try {
        const p = await get("api/proof/" + el.dataset.seq);
        if (!p.pending || tries > 30) {
          el.className = "verdict " + (p.ok ? "ok" : p.pending ? "pending" : "bad");
          el.dataset.pending = String(!!p.pending);
          el.replaceChildren((p.ok ? "✓ " : p.pending ? "… " : "✗ "), h("span", { class: "proof-text", text: p.text }));
          return;
        }
      } catch (e) { /* retry */ }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 800);
  }

  // --- plots: plain SVG ---
  const SVGNS = "http://www.w3.org/2000/svg";
  const sv = (tag, attrs) => { const el = document.createElementNS(SVGNS, tag); for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v); return el; };
  const palette = ["#4c8dff", "#3fb950", "#d29922", "#a371f7", "#f0883e", "#ff6b6b", "#39c5cf", "#db61a2", "#8b949e", "#2f6fde"];
  function linePlot(svg, legend, times, agents, key, unit) {
    const W = Math.max(280, Math.round(svg.clientWidth || 640)), H = 260, L = 44, R = 8, T = 10, B = 22;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.replaceChildren(); legend.replaceChildren();
    if (!times.length) return;
    const top = agents.map((a) => ({ a, sum: a[key].reduce((s, v) => s + Math.max(0, v), 0) })).sort((x, y) => y.sum - x.sum).slice(0, 10).filter((x) => x.sum > 0);
    let max = 0;
    for (const { a } of top) for (const v of a[key]) max = Math.max(max, v);
    if (max <= 0) max = 1;
    const t0 = times[0], t1 = times[times.length - 1] || t0 + 1;
    const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      svg.append(sv("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      const tx = sv("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }); tx.textContent = max >= 100 ? fmtInt(Math.round(v)) : max >= 4 ? v.toFixed(1) : v.toFixed(2); svg.append(tx);
    }
    for (const [t, label] of [[t0, new Date(t0).toLocaleTimeString([], { hour12: false })], [t1, "now"]]) {
      const tx = sv("text", { x: x(t), y: H - 6, "text-anchor": t === t0 ? "start" : "end" }); tx.textContent = label; svg.append(tx);
    }
    top.forEach(({ a }, i) => {
      // -1 is no sample: the line breaks there.
      let d = "", up = true;
      a[key].forEach((v, j) => {
        if (v < 0) { up = true; return; }
        d += (up ? "M" : "L") + x(times[j]).toFixed(1) + " " + y(v).toFixed(1) + " ";
        up = false;
      });
      const p = sv("path", { class: "series", d, stroke: palette[i % palette.length] });
      const title = sv("title"); title.textContent = a.name + " (AID " + a.aid + ")"; p.append(title);
      svg.append(p);
      legend.append(h("li", {}, h("span", { class: "sw", style: { background: palette[i % palette.length] } }), a.name + " (" + a.aid + ")"));
    });
    if (!top.length) legend.append(h("li", { class: "sub", text: "No " + unit + " in the window." }));
  }
  function plots() {
    const tok = $("#plot-tokens");
    if (!tok) return;
    const draw = async () => {
      let s;
      try { s = await get("api/series"); } catch (e) { return; }
      $("#plots-empty").hidden = s.t && s.t.length > 1;
      const times = s.t || [];
      linePlot(tok, $("#legend-tokens"), times, s.agents, "tokens_per_min", "tokens");
      linePlot($("#plot-cpu"), $("#legend-cpu"), times, s.agents, "cpu", "CPU use");
      const share = $("#plot-share");
      const now = s.agents.map((a) => ({ a, v: a.cpu.length ? a.cpu[a.cpu.length - 1] : -1 })).filter((x) => x.v > 0).sort((x, y) => y.v - x.v);
      const total = now.reduce((t, x) => t + x.v, 0);
      share.replaceChildren(...now.slice(0, 31).map(({ a, v }) => h("div", { class: "bar", role: "listitem", "aria-label": a.name + ": " + ((100 * v) / total).toFixed(1) + "%" },
        h("span", { text: a.name + " (" + a.aid + ")" }),
        h("span", { class: "track" }, h("span", { class: "fill", style: { display: "block", width: ((100 * v) / total).toFixed(2) + "%" } })),
        h("span", { class: "v", text: ((100 * v) / total).toFixed(1) + "%" }))));
      if (!now.length) share.append(h("p", { class: "sub", text: "No agent used CPU in the last sample." }));
    };
    draw();
    setInterval(draw, 5000);
  }

  // --- keyboard ---
  function keyboard() {
    let g = false, gTimer = 0;
    const rows = () => $$("table.grid tbody tr[data-href]");
    function move(d) {
      const rs = rows();
      if (!rs.length) return;
      let i = rs.findIndex((r) => r.classList.contains("sel"));
      rs.forEach((r) => r.classList.remove("sel"));
      i = i < 0 ? (d > 0 ? 0 : rs.length - 1) : Math.min(rs.length - 1, Math.max(0, i + d));
      rs[i].classList.add("sel");
      rs[i].scrollIntoView({ block: "nearest" });
      rs[i].querySelector("a")?.focus({ preventScroll: true });
    }
    document.addEventListener("keydown", (e) => {
      const t = e.target;
      const typing = t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
      if (e.key === "Escape") {
        if (typing && t.id === "filter") { t.value = ""; t.dispatchEvent(new Event("input")); t.blur(); }
        return;
      }
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      if (g) {
        g = false; clearTimeout(gTimer);
        const dest = { a: "./", l: "audit", p: "plots" }[e.key];
        if (dest) { e.preventDefault(); location.href = dest; }
        return;
      }
      switch (e.key) {
        case "/": { const f = $("#filter"); if (f) { e.preventDefault(); f.focus(); f.select?.(); } break; }
        case "?": e.preventDefault(); $("#help").showModal(); break;
        case "g": g = true; gTimer = setTimeout(() => (g = false), 1200); break;
        case "j": case "ArrowDown": if (rows().length) { e.preventDefault(); move(1); } break;
        case "k": case "ArrowUp": if (rows().length) { e.preventDefault(); move(-1); } break;
        case "Enter": { const s = $("table.grid tbody tr.sel"); if (s && t === document.body) { e.preventDefault(); location.href = s.dataset.href; } break; }
        case "q": { // focus Quarantine; Enter or Space presses it
          const b = $('button[data-action="quarantine"]');
          if (b) { e.preventDefault(); b.focus(); toast("Quarantine: press Enter to confirm."); }
          break;
        }
      }
    });
    // A click anywhere on a row (not on its links) opens it.
    document.addEventListener("click", (e) => {
      const tr = e.target.closest?.("table.grid tbody tr[data-href]");
      if (tr && !e.target.closest("a,button,input,select")) location.href = tr.dataset.href;
    });
    $("#help-btn")?.addEventListener("click", () => $("#help").showModal());
  }

  function logout() {
    $("#logout")?.addEventListener("click", async () => {
      try { await post("logout"); } catch (e) { /* gone anyway */ }
      location.reload();
    });
  }

  // Relative times age in place.
  setInterval(() => { for (const t of $$("td.last time")) t.textContent = ago(t.getAttribute("datetime")); }, 10000);

  keyboard(); logout(); actions(); proof(); agentState();
  if (pageName === "agents") agentsTable();
  if (pageName === "audit") liveRows(300);
  if (pageName === "agent") liveRows(50);
  if (pageName === "plots") plots();
  if ($("#live")) connect();
})();
