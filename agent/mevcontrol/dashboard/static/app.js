// mevfleet dashboard: the views of the control plane, live over SSE. No inline script (strict CSP), no
// innerHTML with data (every value becomes a text node), every request to this origin only.
"use strict";

(() => {
  const VIEWS = ["pnl", "strategy", "risk", "health", "feed", "stuck", "audit", "competition", "sandwiches", "positions",
    "bridges"];
  // Views read from an /api/* route (the session's answer names it when this control plane serves it).
  const API_VIEWS = { competition: "competition_url", sandwiches: "sandwiches_url" };
  // Views of the page's own that not every control plane has (the session's `views` lists them when it has).
  const OPTIONAL = new Set(["positions", "bridges"]);
  // Views past the ten digits, by letter (t is the theme).
  const LETTERS = { b: "bridges" };
  const served = (name) => (name in API_VIEWS ? Boolean(state.me && state.me[API_VIEWS[name]])
    : !OPTIONAL.has(name) || Boolean(state.me && state.me.views.includes(name)));
  const FEED_KEEP = 500;
  const state = {
    me: null, csrf: null, view: null, data: {}, feed: [], pnlRange: null, hours: 24,
    charts: {}, source: null, lastEvent: 0, sandwichChains: new Set(),
  };
  // What the browser tests read: when each feed item and each P&L update reached this page.
  const probe = (window.__dash = { arrivals: {}, eventAt: {}, pnlAt: 0, pnlExecutions: null, ready: false, errors: [] });

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers: elements from data, never HTML strings ------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  const put = (id, ...nodes) => $(id).replaceChildren(...nodes);
  const empty = (text) => h("p", { class: "empty" }, text);

  function table(columns, rows, opts = {}) {
    if (!rows.length) return empty(opts.empty || "nothing yet");
    const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, scope: "col" }, c.label)));
    const body = rows.map((r) =>
      h("tr", { class: opts.rowClass ? opts.rowClass(r) : null },
        columns.map((c) => {
          const v = c.get(r);
          return h("td", { class: [c.num ? "num" : "", c.wrap ? "wrap" : "", c.cls ? c.cls(r) : ""].join(" ").trim() || null },
            v instanceof Node ? v : v === null || v === undefined ? "—" : String(v));
        })));
    const t = h("table", {}, h("thead", {}, head), h("tbody", {}, body));
    return opts.scroll ? h("div", { class: "scroll", tabindex: "0" }, t) : t;
  }

  function bars(entries, opts = {}) {
    if (!entries.length) return empty(opts.empty || "nothing yet");
    const max = Math.max(1, ...entries.map((e) => e[1]));
    return entries.map(([label, n, cls]) => {
      const fill = h("div", { class: "fill " + (cls || "") });
      fill.style.width = `${(100 * n) / max}%`; // CSSOM: allowed by the CSP (no inline style attribute)
      return h("div", { class: "bar", role: "img", "aria-label": `${label}: ${n}` },
        h("span", {}, label), h("div", { class: "track" }, fill), h("span", { class: "n" }, fmtInt(n)));
    });
  }

  function card(label, value, cls) {
    return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value " + (cls || "") }, value));
  }

  // ---- formatting -----------------------------------------------------------------------------------
  const usdFmt = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 2 });
  function usd(v) {
    if (v === null || v === undefined) return "—";
    const x = Number(v);
    if (!Number.isFinite(x)) return String(v);
    if (x !== 0 && Math.abs(x) < 0.01) return `${x < 0 ? "-" : ""}$${Math.abs(x).toPrecision(3)}`;
    return usdFmt.format(x);
  }
  const sign = (v) => (Number(v) > 0 ? "good" : Number(v) < 0 ? "bad" : "");
  // Formatters made once: toLocaleString/toLocaleTimeString build a new one on every call (the feed's 100 rows
  // took about 0.4 s of a first load on a busy machine).
  const intFmt = new Intl.NumberFormat("en-US");
  const timeFmt = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const fmtInt = (n) => intFmt.format(Number(n));
  const pct = (x) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(1)}%`);
  const secs = (s) => (s === null || s === undefined ? "—" : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(1)} s`);
  const time = (t) => timeFmt.format(new Date(t * 1000));
  const dateTime = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
  const short = (s, n = 14) => (s && s.length > n ? `${s.slice(0, n)}…` : s || "");
  const yes = (b, good = "yes", bad = "no") => h("span", { class: b ? "good" : "bad" }, b ? good : bad);

  function toast(text, bad) {
    const msg = h("div", { class: "msg" + (bad ? " bad" : "") }, text);
    $("toast").append(msg);
    setTimeout(() => msg.remove(), bad ? 9000 : 5000);
  }

  // ---- requests -------------------------------------------------------------------------------------
  // A GET that failed in the network (not an HTTP answer: a restart, a changed interface) is tried again.
  async function fetchAgain(path, init, tries = 4) {
    for (let k = 1; ; k++) {
      try { return await fetch(path, init); } catch (e) {
        if (k >= tries || !(e instanceof TypeError)) throw e;
        await new Promise((done) => setTimeout(done, 300 * k));
      }
    }
  }

  async function get(path) {
    const r = await fetchAgain(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { showLogin(); throw new Error("logged out"); }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
    return body;
  }

  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf || "" },
      body: JSON.stringify(body || {}),
    });
    const answer = await r.json().catch(() => ({}));
    if (r.status === 401) showLogin();
    if (!r.ok) throw new Error(answer.error || `HTTP ${r.status}`);
    return [r.status, answer];
  }

  // done(answer) says what happened: a text, or { text, bad } when the answer can be a refusal (an agent's ack).
  // With answerId, the answer also stays next to the control that asked.
  async function act(path, body, done, answerId) {
    let text, bad = false;
    try {
      const [status, answer] = await post(path, body);
      if (status === 202) text = `Awaiting a second operator: ${answer.why || answer.action}`;
      else { const said = done(answer); [text, bad] = typeof said === "string" ? [said, false] : [said.text, said.bad]; }
      load("audit"); load("risk"); if (path.includes("/transactions/stuck/")) load("stuck");
      if (path.includes("/positions/")) load("positions");
    } catch (e) {
      text = `Refused: ${e.message}`;
      bad = true;
    }
    toast(text, bad);
    if (answerId) setText(answerId, text, `answer ${bad ? "bad" : "good"}`);
  }

  // ---- login ----------------------------------------------------------------------------------------
  function showLogin() {
    if (state.source) { state.source.close(); state.source = null; }
    $("app").hidden = true;
    $("login").hidden = false;
    $("token").focus();
  }

  async function login(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const r = await fetchAgain("/dashboard/login", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: $("token").value.trim() }),
      });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
      $("token").value = "";
      await start();
    } catch (e) {
      $("login-error").textContent = e.message;
    }
  }

  async function logout() {
    try { await post("/dashboard/logout"); } catch (e) { /* the session is gone either way */ }
    state.me = state.csrf = null;
    showLogin();
  }

  // ---- views ------------------------------------------------------------------------------------------
  function viewQuery(name) {
    if (name === "pnl" && state.pnlRange) return `?start=${state.pnlRange[0]}&end=${state.pnlRange[1]}`;
    if (name === "strategy" || name === "stuck") return `?hours=${state.hours}`;
    if (name === "sandwiches") {
      const chain = $("sandwich-chain").value;
      return `?hours=${encodeURIComponent($("sandwich-hours").value)}${chain ? `&chain=${encodeURIComponent(chain)}` : ""}`;
    }
    return "";
  }

  // The first load asks for the first view and the risk view together with the session (one round trip
  // instead of two); load() takes such an answer once.
  const prefetched = new Map();
  function prefetch(name) {
    const answer = get(`/dashboard/view/${name}${viewQuery(name)}`);
    answer.catch(() => {}); // the session's own answer says what went wrong
    prefetched.set(name, answer);
  }

  async function load(name) {
    try {
      let data;
      if (name in API_VIEWS) {
        if (!served(name)) return;
        data = await get(state.me[API_VIEWS[name]] + viewQuery(name));
      } else if (prefetched.has(name)) {
        const answer = prefetched.get(name);
        prefetched.delete(name);
        data = await answer;
      } else {
        data = await get(`/dashboard/view/${name}${viewQuery(name)}`);
      }
      receive(name, data);
    } catch (e) {
      if (e.message !== "logged out") toast(`${name}: ${e.message}`, true);
    }
  }

  function receive(name, data) {
    if (name === "feed") {
      state.feed = data.items;
      for (const item of data.items) probe.arrivals[item.opportunity_id + ":" + item.kind] ||= Date.now();
    }
    state.data[name] = data;
    if (name === "pnl" && !state.pnlRange) {
      probe.pnlAt = Date.now();
      probe.pnlExecutions = data.total.executions;
      setText("hdr-pnl", usd(data.total.net_usd), sign(data.total.net_usd));
    }
    if (name === "risk") header(data);
    if (state.view === name) render(name);
  }

  function setText(id, text, cls) {
    const el = $(id);
    el.textContent = text;
    el.className = cls || "";
  }

  function header(risk) {
    setText("hdr-exposure", `${usd(risk.total_usd)} / ${usd(risk.limits.max_total_exposure_usd)}`,
      risk.exposure_used >= 1 ? "bad" : risk.exposure_used > 0.8 ? "warn" : "");
    const stop = risk.emergency_stop;
    setText("hdr-stop", stop.engaged ? `ENGAGED by ${stop.by}` : "off", stop.engaged ? "bad" : "good");
    setText("hdr-leases", risk.leases_granted ? "granted" : "withheld", risk.leases_granted ? "good" : "bad");
    if (!state.data.pnl || state.pnlRange) setText("hdr-pnl", usd(risk.daily_net_usd), sign(risk.daily_net_usd));
  }

  // A node's peers and its beacon node's ("—": its agent's node did not say), with a marker below the minimum.
  function peersOf(r, min) {
    if (r.peers == null && r.beacon_peers == null) return "—";
    const text = [r.peers ?? "—", ...(r.beacon_peers == null ? [] : [r.beacon_peers])].join(" · ");
    return r.low_peers ? h("span", { title: `fewer than ${min} peers` }, `${text} low`) : text;
  }

  const RENDER = {
    pnl(d) {
      put("pnl-cards",
        card("Net", usd(d.total.net_usd), sign(d.total.net_usd)), card("Profit", usd(d.total.profit_usd)),
        card("Gas", usd(d.total.gas_usd)), card("Builder payments", usd(d.total.builder_usd)),
        card("Executions", fmtInt(d.total.executions)),
        card("Range (UTC)", d.start === d.end ? d.start : `${d.start} → ${d.end}`));
      put("pnl-table", table([
        { label: "Chain", get: (r) => r.chain }, { label: "Strategy", get: (r) => r.strategy },
        { label: "Executions", num: true, get: (r) => fmtInt(r.executions) },
        { label: "Landed", num: true, get: (r) => fmtInt(r.landed) },
        { label: "Profit", num: true, get: (r) => usd(r.profit_usd) },
        { label: "Gas", num: true, get: (r) => usd(r.gas_usd) },
        { label: "Builder payments", num: true, get: (r) => usd(r.builder_usd) },
        { label: "Net", num: true, get: (r) => usd(r.net_usd), cls: (r) => sign(r.net_usd) },
      ], d.rows, { empty: "no live executions in this range" }));
      put("pnl-strategy", table([
        { label: "Strategy", get: (r) => r[0] }, { label: "Net", num: true, get: (r) => usd(r[1]), cls: (r) => sign(r[1]) },
      ], Object.entries(d.by_strategy), { empty: "—" }));
      pnlChart(d);
    },
    strategy(d) {
      const f = d.funnel;
      put("strategy-funnel", ...bars([["found", f.found], ["passed risk", f.passed_risk], ["executed", f.executed],
        ["sent", f.sent], ["landed", f.landed]]));
      put("strategy-skips", ...bars(Object.entries(d.skipped_by_limit).map(([k, n]) => [k, n, "warn"]),
        { empty: "no skips in the window" }));
      put("strategy-table", table([
        { label: "Chain", get: (r) => r.chain }, { label: "Strategy", get: (r) => r.strategy },
        { label: "Found", num: true, get: (r) => fmtInt(r.found) }, { label: "Skipped", num: true, get: (r) => fmtInt(r.skipped) },
        { label: "Executed (live)", num: true, get: (r) => fmtInt(r.executed) },
        { label: "Dry-run", num: true, get: (r) => fmtInt(r.dry_run) },
        { label: "Landed", num: true, get: (r) => fmtInt(r.landed) },
        { label: "Success", num: true, get: (r) => pct(r.success_rate) },
        { label: "Net / execution", num: true, get: (r) => usd(r.net_per_execution_usd) },
        { label: "Net", num: true, get: (r) => usd(r.net_usd), cls: (r) => sign(r.net_usd) },
      ], d.rows, { empty: "no opportunities in the window" }));
    },
    risk(d) {
      const l = d.limits;
      put("risk-gauges",
        card("Exposure in flight", `${usd(d.total_usd)} of ${usd(l.max_total_exposure_usd)}`, d.exposure_used >= 1 ? "bad" : ""),
        card("Daily loss budget used", `${pct(d.daily_loss_used)} of ${usd(l.daily_limit_usd)}`, d.daily_loss_used >= 1 ? "bad" : ""),
        card("Losing executions in a row", `${d.losses_in_a_row} of ${l.consecutive_losses}`,
          d.losses_in_a_row >= l.consecutive_losses ? "bad" : ""),
        card("P&L today", usd(d.daily_net_usd), sign(d.daily_net_usd)),
        card("Leases", d.leases_granted ? "granted" : "withheld", d.leases_granted ? "good" : "bad"),
        card("Emergency stop", d.emergency_stop.engaged ? `engaged (${d.emergency_stop.by})` : "off",
          d.emergency_stop.engaged ? "bad" : "good"),
        card("Live chains", d.live_chains.join(", ") || "none (dry-run)"));
      put("risk-breaches", d.breached.length
        ? h("div", { class: "card bad", role: "alert" }, h("strong", {}, "Fleet limits breached (no leases): "), d.breached.join("; "))
        : h("p", { class: "good" }, "Every fleet limit holds."));
      const kv = (o) => Object.entries(o).map(([k, v]) => [k, v]);
      const money = [{ label: "", get: (r) => r[0] }, { label: "USD", num: true, get: (r) => usd(r[1]) }];
      // Against the tightest of the agents' own limits (each agent enforces its own before signing).
      const tightest = (key) => Math.min(...d.agents.map((a) => a.own?.limits?.[key] ?? Infinity));
      const against = (key) => [...money, { label: "Limit (per agent)", num: true, get: () => {
        const l = tightest(key); return Number.isFinite(l) ? usd(l) : "—"; } },
        { label: "Used", num: true, get: (r) => { const l = tightest(key); return Number.isFinite(l) ? pct(Number(r[1]) / l) : "—"; },
          cls: (r) => (Number(r[1]) >= tightest(key) ? "bad" : "") }];
      put("risk-chain", table(against("max_chain_exposure_usd"), kv(d.by_chain), { empty: "nothing in flight" }));
      put("risk-token", table(against("max_token_exposure_usd"), kv(d.by_token), { empty: "nothing in flight" }));
      put("risk-agent", table(money, kv(d.by_agent), { empty: "no agent reported" }));
      put("risk-agents", table([
        { label: "Agent", get: (r) => r.name },
        { label: "Lease", get: (r) => yes(r.lease_fresh && r.lease_left_s > 0, "fresh", "none") },
        { label: "Lease left", num: true, get: (r) => (r.lease_left_s > 0 ? secs(r.lease_left_s) : "expired") },
        { label: "Heartbeat", num: true, get: (r) => secs(r.heartbeat_age_s) },
        { label: "Stop", get: (r) => (r.emergency_stop ? h("span", { class: "bad" }, "stopped") : "running") },
        { label: "Live chains", get: (r) => r.live_chains.join(", ") || "—" },
        { label: "In flight", num: true, get: (r) => `${r.in_flight} · ${usd(r.exposure_usd)}` },
        { label: "Paused", get: (r) => r.paused_strategies.join(", ") || "—" },
        { label: "Breakers (its own API)", wrap: true, get: (r) => breakers(r.own) },
      ], d.agents, { empty: "no agent has reported yet" }));
      put("risk-agent-limits", table([
        { label: "Agent", get: (r) => r.name },
        ...Object.entries(AGENT_LIMITS).map(([key, label]) => ({ label, num: true, get: (r) => {
          if (!r.own) return "not asked yet";
          if (!r.own.ok) return h("span", { class: "bad" }, r.own.error);
          const v = r.own.limits?.[key];
          return v === undefined ? "—" : key === "max_consecutive_failures" ? fmtInt(v) : usd(v);
        } })),
      ], d.agents, { empty: "no agent has reported yet" }));
      if (isOperator()) {
        for (const [id, key] of [["lim-exposure", "max_total_exposure_usd"], ["lim-daily", "daily_limit_usd"], ["lim-losses", "consecutive_losses"]]) {
          const input = $(id);
          if (document.activeElement !== input && !input.dataset.edited) input.value = l[key];
        }
        liveChains(d);
        agentLimitsForm(d);
        $("btn-resume").disabled = !d.emergency_stop.engaged;
      }
    },
    health(d) {
      put("health-bus",
        card("Bus", d.bus.connected ? "connected" : "down", d.bus.connected ? "good" : "bad"),
        card("Bus lag", secs(d.bus.lag_s)), card("Last batch commit", secs(d.bus.last_commit_s)),
        card("Agents up", `${d.agents.filter((a) => a.up).length} / ${d.agents.length}`));
      put("health-agents", table([
        { label: "Agent", get: (r) => r.name }, { label: "Up", get: (r) => yes(r.up, "up", "down") },
        { label: "Ready (its API)", get: (r) => (r.ready ? h("span", { class: r.ready.ready ? "good" : "bad", title: r.ready.detail },
          r.ready.ready ? "ready" : "not ready") : "—") },
        { label: "Heartbeat", num: true, get: (r) => secs(r.heartbeat_age_s) },
        { label: "Chains", get: (r) => r.chains.join(", ") }, { label: "Live", get: (r) => r.live_chains.join(", ") || "—" },
        { label: "Stopped", get: (r) => (r.emergency_stop ? h("span", { class: "bad" }, "yes") : "no") },
        { label: "Spool backlog", num: true, get: (r) => fmtInt(r.spool_pending) },
        { label: "Dropped events", num: true, get: (r) => fmtInt(r.dropped) }, { label: "API", get: (r) => r.api_url || "—" },
      ], d.agents, { empty: "no agent has reported yet" }));
      put("health-nodes", table([
        { label: "Agent", get: (r) => r.agent }, { label: "Chain", get: (r) => r.chain },
        { label: "Head", num: true, get: (r) => (r.head === undefined ? "—" : fmtInt(r.head)) },
        { label: "Lag (blocks)", num: true, get: (r) => r.lag_blocks, cls: (r) => (r.lag_blocks > 2 ? "bad" : "") },
        { label: "Head age", num: true, get: (r) => secs(r.head_age_s) },
        { label: "RPC round trip", num: true, get: (r) => secs(r.rpc_round_trip_s) },
        { label: "Stage p99s", wrap: true, get: (r) => Object.entries(r.stages || {}).map(([k, v]) => `${k} ${secs(v)}`).join(" · ") || "—" },
        { label: "Peers (node · beacon)", num: true, get: (r) => peersOf(r, d.min_node_peers), cls: (r) => (r.low_peers ? "bad" : "") },
      ], d.nodes, { empty: "no node reported yet" }));
      latencyChart(d);
    },
    feed() {
      const kind = $("feed-kind").value;
      const rows = state.feed.filter((i) => !kind || i.kind === kind).slice(0, 200);
      const fresh = Date.now() - 1500;
      put("feed-table", table([
        { label: "Time", get: (r) => time(r.at) }, { label: "Event", get: (r) => r.kind },
        { label: "Agent", get: (r) => r.agent }, { label: "Chain", get: (r) => r.chain },
        { label: "Strategy", get: (r) => r.strategy }, { label: "Block", num: true, get: (r) => r.block },
        { label: "Status", get: (r) => statusOf(r) },
        { label: "Net", num: true, get: (r) => usd(r.net_usd), cls: (r) => sign(r.net_usd) },
        { label: "Reason / transactions", wrap: true, get: (r) => r.detail || "" },
        { label: "Opportunity", get: (r) => h("span", { title: r.opportunity_id }, short(r.opportunity_id, 18)) },
      ], rows, {
        scroll: true, empty: "waiting for opportunities…",
        rowClass: (r) => ((probe.arrivals[r.opportunity_id + ":" + r.kind] || 0) > fresh ? "new" : null),
      }));
    },
    stuck(d) {
      $("stuck-note").textContent = `Sent in the last ${d.hours} h, not settled, and the chain is more than ${d.after_blocks} blocks past them.`;
      put("stuck-table", table([
        { label: "Sent", get: (r) => dateTime(r.sent_at) }, { label: "Agent", get: (r) => r.agent },
        { label: "Chain", get: (r) => r.chain }, { label: "Strategy", get: (r) => r.strategy },
        { label: "Block", num: true, get: (r) => r.block }, { label: "Behind", num: true, get: (r) => r.blocks_behind },
        { label: "Transactions", wrap: true, get: (r) => r.tx_hashes.join(" ") },
        { label: "State", get: (r) => h("span", { class: r.state === "stuck" ? "pill bad" : "pill", title: r.action_detail || "" },
          r.replacement_hash ? `${r.state} → ${short(r.replacement_hash, 14)}` : r.state) },
        { label: "Action", get: (r) => stuckActions(r) },
      ], d.stuck, { empty: "no stuck transaction" }));
    },
    audit(d) {
      put("audit-pending", table([
        { label: "Requested", get: (r) => r.requested_at.replace("T", " ").slice(0, 19) },
        { label: "By", get: (r) => r.requested_by }, { label: "Action", get: (r) => r.action },
        { label: "What", wrap: true, get: (r) => JSON.stringify(r.payload) },
        { label: "", get: (r) => approveCell(r) },
      ], d.pending, { empty: "no request awaits approval" }));
      put("audit-table", table([
        { label: "Time (UTC)", get: (r) => dateTime(r.at) }, { label: "Operator", get: (r) => r.operator },
        { label: "Action", get: (r) => r.action }, { label: "Target", get: (r) => short(r.target, 34) },
        { label: "Result", get: (r) => r.result, cls: (r) => (/refused|expired/.test(r.result) ? "bad" : "") },
        { label: "Approved by", get: (r) => r.approved_by || "—" },
        { label: "Before → after", wrap: true, get: (r) => `${JSON.stringify(r.before)} → ${JSON.stringify(r.after)}` },
      ], d.rows, { scroll: true, empty: "no action yet" }));
    },
    competition(d) {
      if (!Array.isArray(d.opportunities) || !Array.isArray(d.searchers)) { put("competition-body", ...generic(d)); return; }
      const taken = d.opportunities.filter((o) => o.taken_by);
      put("competition-body",
        h("div", { class: "cards" }, card("Window", `${d.hours} h, ${d.blocks} blocks after`),
          card("Found, not landed by us", fmtInt(d.missed)), card("Taken by another searcher", fmtInt(d.taken), d.taken ? "bad" : ""),
          card("Searchers", fmtInt(d.searchers.length))),
        h("h3", {}, "Who took them"),
        table([
          { label: "Searcher", wrap: true, get: (r) => r.searcher }, { label: "Taken", num: true, get: (r) => fmtInt(r.taken) },
          { label: "Contracts", wrap: true, get: (r) => r.contracts.join(" ") },
          { label: "Profit (base units per token)", wrap: true, get: (r) => Object.entries(r.profit).map(([t, a]) => `${short(t, 10)} ${a}`).join(" · ") },
        ], d.searchers, { empty: "nobody took what we missed" }),
        h("h3", {}, "Taken opportunities (and at what price)"),
        table([
          { label: "Block", num: true, get: (r) => r.block }, { label: "Chain", get: (r) => r.chain },
          { label: "Strategy", get: (r) => r.strategy }, { label: "We expected", num: true, get: (r) => usd(r.expected_profit_usd) },
          { label: "Taken in", num: true, get: (r) => `+${r.taken_by.blocks_after}` },
          { label: "By", wrap: true, get: (r) => short(r.taken_by.searcher || r.taken_by.account, 14) },
          { label: "Their profit", num: true, get: (r) => usd(r.taken_by.profit_usd) },
          { label: "Priority fee (wei)", num: true, get: (r) => r.taken_by.priority_fee_wei },
          { label: "To builder (wei)", num: true, get: (r) => r.taken_by.coinbase_transfer_wei },
        ], taken, { scroll: true, empty: "none taken by others in the window" }),
        h("h3", {}, "Missed, nobody seen taking them"),
        table([
          { label: "Found", get: (r) => r.found_at.replace("T", " ").slice(0, 19) }, { label: "Block", num: true, get: (r) => r.block },
          { label: "Agent", get: (r) => r.agent }, { label: "Chain", get: (r) => r.chain }, { label: "Strategy", get: (r) => r.strategy },
          { label: "We expected", num: true, get: (r) => usd(r.expected_profit_usd) },
        ], d.opportunities.filter((o) => !o.taken_by).slice(0, 200), { scroll: true, empty: "none" }));
    },
  };

  // Exact amounts per token (base units, as the API gives them), one line.
  const perToken = (o) => Object.entries(o || {}).map(([t, a]) => `${a} ${short(t, 10)}`).join(" · ") || "—";
  const bps = (x) => (x === null || x === undefined ? "—" : `${Number(x).toFixed(1)} bps`);

  function sandwichChains(d) {
    // The chain filter offers every chain seen with no filter on (a filtered answer names only its own).
    for (const c of d.chains) state.sandwichChains.add(c.chain);
    const select = $("sandwich-chain");
    const have = new Set([...select.options].map((o) => o.value));
    for (const c of [...state.sandwichChains].sort()) if (!have.has(c)) select.append(h("option", { value: c }, c));
  }

  function generic(d) {
    // Whatever /api/analytics/competition answers: lists of objects as tables, the rest as key/value.
    const out = [];
    const scalars = [];
    for (const [k, v] of Object.entries(d || {})) {
      if (Array.isArray(v) && v.length && typeof v[0] === "object") {
        const cols = Object.keys(v[0]).map((c) => ({ label: c, get: (r) => (typeof r[c] === "object" ? JSON.stringify(r[c]) : r[c]) }));
        out.push(h("h3", {}, k), table(cols, v, { scroll: true }));
      } else if (v && typeof v === "object" && !Array.isArray(v)) {
        out.push(h("h3", {}, k), table([{ label: "", get: (r) => r[0] }, { label: "", get: (r) => JSON.stringify(r[1]) }], Object.entries(v)));
      } else scalars.push([k, v]);
    }
    if (scalars.length) out.unshift(h("div", { class: "cards" }, scalars.map(([k, v]) => card(k, Array.isArray(v) ? v.join(", ") : v))));
    return out.length ? out : [empty("no data")];
  }

  RENDER.sandwiches = (d) => {
    if (!Array.isArray(d.signals) || !Array.isArray(d.chains)) { put("sandwich-signals", ...generic(d)); return; }
    sandwichChains(d);
    const t = d.totals;
    put("sandwich-cards",
      card("Sandwichable swaps seen", fmtInt(d.seen)),
      card("Sandwiched", `${fmtInt(d.sandwiched)} (${fmtInt(d.sandwiches)} sandwich${d.sandwiches === 1 ? "" : "es"})`, d.sandwiched ? "bad" : ""),
      card("JIT liquidity around them", fmtInt(d.jit)),
      card("Predicted (optimal sandwiches)", usd(t.predicted_profit_usd)),
      card("Attackers' profit", usd(t.attacker_profit_usd), Number(t.attacker_profit_usd) > 0 ? "bad" : ""),
      card("Victims' loss", usd(t.victim_loss_usd), Number(t.victim_loss_usd) > 0 ? "bad" : ""),
      card("Sandwichers", fmtInt(d.sandwichers.length)));
    const sums = [
      { label: "Seen", num: true, get: (r) => fmtInt(r.seen) },
      { label: "Sandwiched", num: true, get: (r) => fmtInt(r.sandwiched), cls: (r) => (r.sandwiched ? "bad" : "") },
      { label: "JIT", num: true, get: (r) => fmtInt(r.jit) },
      { label: "Predicted", num: true, get: (r) => usd(r.predicted_profit_usd) },
      { label: "Attackers' profit", num: true, get: (r) => usd(r.attacker_profit_usd) },
      { label: "Victims' loss", num: true, get: (r) => usd(r.victim_loss_usd) },
      { label: "Unpriced", num: true, get: (r) => fmtInt(r.unpriced) },
    ];
    put("sandwich-chains", table([{ label: "Chain", get: (r) => r.chain }, ...sums], d.chains,
      { empty: "no sandwichable swap seen in the window" }));
    put("sandwich-pools", table([
      { label: "Chain", get: (r) => r.chain }, { label: "Pool", wrap: true, get: (r) => r.pool }, ...sums,
      { label: "Attackers' profit (base units)", wrap: true, get: (r) => perToken(r.attacker_profit) },
      { label: "Victims' loss (base units)", wrap: true, get: (r) => perToken(r.victim_loss) },
      { label: "Sandwichers", wrap: true, get: (r) => Object.entries(r.sandwichers).map(([k, n]) => `${short(k, 12)} ×${n}`).join(" · ") || "—" },
    ], d.pools, { scroll: true, empty: "no pool in the window" }));
    put("sandwich-takers", table([
      { label: "Sandwicher", wrap: true, get: (r) => r.searcher },
      { label: "Victims", num: true, get: (r) => fmtInt(r.victims) },
      { label: "Sandwiches", num: true, get: (r) => fmtInt(r.sandwiches) },
      { label: "Pools", num: true, get: (r) => fmtInt(r.pools) },
      { label: "Profit", num: true, get: (r) => usd(r.profit_usd) },
      { label: "Profit (base units)", wrap: true, get: (r) => perToken(r.profit) },
      { label: "Victims' loss", num: true, get: (r) => usd(r.victim_loss_usd) },
      { label: "Gas (wei)", num: true, get: (r) => r.gas_paid_wei },
      { label: "To builder (wei)", num: true, get: (r) => r.coinbase_transfer_wei },
      { label: "Contracts", wrap: true, get: (r) => r.contracts.join(" ") },
      { label: "Builders", wrap: true, get: (r) => r.builders.map((b) => short(b, 12)).join(" ") || "—" },
    ], d.sandwichers, { scroll: true, empty: "nobody sandwiched a signalled swap in the window" }));
    put("sandwich-signals", table([
      { label: "Seen (UTC)", get: (r) => r.seen_at.replace("T", " ").slice(0, 19) },
      { label: "Chain", get: (r) => r.chain }, { label: "Victim tx", wrap: true, get: (r) => short(r.tx, 18) },
      { label: "Pool", wrap: true, get: (r) => short(r.pool, 14) },
      { label: "Impact", num: true, get: (r) => bps(r.price_impact_bps) },
      { label: "Slippage", num: true, get: (r) => bps(r.slippage_bps) },
      { label: "Predicted", num: true, get: (r) => (r.predicted_profit_usd !== null ? usd(r.predicted_profit_usd) : `${r.predicted_profit} ${short(r.predicted_profit_token, 10)}`) },
      { label: "Sandwiched by", wrap: true, get: (r) => (r.sandwiched_by ? short(r.sandwiched_by.searcher, 14) : "—"),
        cls: (r) => (r.sandwiched_by ? "bad" : "") },
      { label: "Their profit", num: true, get: (r) => (!r.sandwiched_by ? "—" : r.sandwiched_by.profit_usd !== null
        ? usd(r.sandwiched_by.profit_usd) : `${r.sandwiched_by.profit_amount} ${short(r.sandwiched_by.profit_token, 10)}`) },
      { label: "Victim's loss", num: true, get: (r) => (!r.victim_loss ? "—" : r.victim_loss.usd !== null
        ? usd(r.victim_loss.usd) : `${r.victim_loss.amount} ${short(r.victim_loss.token, 10)}`) },
      { label: "JIT by", wrap: true, get: (r) => (r.jit_by ? short(r.jit_by.provider, 14) : "—") },
    ], d.signals.slice(0, 200), { scroll: true, rowClass: (r) => (r.sandwiched_by ? "sandwiched" : null), empty: "none" }));
  };

  function statusOf(r) {
    if (!r.status) return "—";
    const cls = { landed: "good", ok: "good", reverted: "bad", failed: "bad", refused: "bad", rejected: "warn", dry_run: "" }[r.status];
    return h("span", { class: `pill ${cls === undefined ? "warn" : cls}` }, r.status);
  }

  function breakers(own) {
    if (!own) return "not asked yet";
    if (!own.ok) return h("span", { class: "bad" }, own.error);
    const open = Object.entries(own.circuit_breakers || {}).filter(([, b]) => b && (b.open || b.tripped || b.state === "open"));
    return open.length ? h("span", { class: "bad" }, open.map(([k]) => k).join(", ") + " open")
      : `${Object.keys(own.circuit_breakers || {}).length} closed`;
  }

  // The agents' own limits the risk view shows and its form changes (mevagent's RiskPatch names).
  const AGENT_LIMITS = {
    max_position_size_usd: "Max position (USD)", max_total_exposure_usd: "Max total exposure (USD)",
    max_chain_exposure_usd: "Max per chain (USD)", max_token_exposure_usd: "Max per token (USD)",
    max_daily_loss_usd: "Max daily loss (USD)", max_drawdown_usd: "Max drawdown (USD)",
    max_consecutive_failures: "Max consecutive failures",
  };

  function agentLimitsForm(d) {
    const first = d.agents.find((a) => a.own?.ok && a.own.limits);
    for (const input of document.querySelectorAll("#agent-limits input[data-limit]")) {
      if (document.activeElement === input || input.dataset.edited) continue;
      input.value = first ? first.own.limits[input.dataset.limit] ?? "" : "";
    }
  }

  // ---- cross-chain positions (mevcontrol.positions) ---------------------------------------------------------
  const OPEN_STATES = ["in_flight", "held", "unwinding", "stuck"];
  const stateClass = (s) => (s === "stuck" || s === "failed" ? "pill bad" : s === "closed" || s === "unwound" ? "pill good"
    : OPEN_STATES.includes(s) ? "pill warn" : "pill");
  RENDER.positions = (d) => {
    const open = OPEN_STATES.reduce((n, s) => n + (d.counts[s] || 0), 0);
    put("positions-cards",
      card("Open positions", fmtInt(open), open ? "warn" : ""),
      card("Stuck (an operator must act)", fmtInt(d.counts.stuck || 0), d.counts.stuck ? "bad" : ""),
      card("Cross-chain exposure", usd(d.exposure_usd)),
      card("Fleet exposure / limit", `${usd(d.fleet_exposure_usd)} / ${usd(d.max_total_exposure_usd)}`,
        Number(d.fleet_exposure_usd) > Number(d.max_total_exposure_usd) ? "bad" : ""),
      card("Realized (closed)", usd(d.realized_usd), sign(d.realized_usd)),
      card("Unwind policy", `${d.policy.action}, ≤ ${d.policy.max_slippage_bps} bps` +
        (d.policy.action === "hold" ? `, ${secs(d.policy.hold_s)}` : "")));
    put("positions-exposure", table([
      { label: "Chain", get: (r) => r[0] }, { label: "Open exposure", num: true, get: (r) => usd(r[1]) },
    ], Object.entries(d.exposure_by_chain), { empty: "no open position: nothing exposed" }));
    put("positions-states", ...bars(Object.entries(d.counts).filter(([, n]) => n).map(([s, n]) =>
      [s, n, s === "stuck" || s === "failed" ? "bad" : ""]), { empty: "no position yet" }));
    put("positions-table", table([
      { label: "Opened", get: (r) => dateTime(r.opened_at) },
      { label: "Buy → sell", get: (r) => `${r.buy_chain} → ${r.sell_chain}` },
      { label: "Pair", get: (r) => h("span", { title: `${r.base} / ${r.quote}` }, `${short(r.base, 12)} / ${short(r.quote, 12)}`) },
      { label: "State", get: (r) => h("span", { class: stateClass(r.state), "data-state": r.state }, r.state) },
      { label: "Expected", num: true, get: (r) => usd(r.expected_net_usd) },
      { label: "Realized", num: true, get: (r) => usd(r.realized_usd), cls: (r) => sign(r.realized_usd) },
      { label: "Exposure", num: true, get: (r) => usd(r.exposure_usd) },
      { label: "Legs", wrap: true, get: (r) => r.legs.map((l) => `${l.leg} ${l.chain}: ${l.status}${l.reason ? ` (${l.reason})` : ""}`).join(" · ") },
      { label: "Last step", wrap: true, get: (r) => r.last_step.replace(/^[0-9.]+ /, "") },
      { label: "Action", get: (r) => unwindCell(r) },
    ], d.positions, { scroll: true, empty: "no cross-chain position yet" }));
  };

  // ---- bridges and cross-chain opportunities (mevcontrol.bridge_monitor, mevcontrol.crosschain) ---------------
  // An opportunity's fields the table has columns for; every other field it carries (a new kind's own) is listed
  // in its last column as it comes.
  const OPP_SHOWN = new Set(["kind", "buy_chain", "sell_chain", "base", "quote", "amount_in", "net_usd", "base_route",
    "quote_route", "found_at", "chain", "exchange", "direction"]);
  // Where it buys and sells: two chains (dex_dex), or a chain's pool and an exchange (cex_dex, by its direction).
  const venues = (r) => (r.buy_chain !== undefined ? `${r.buy_chain} → ${r.sell_chain}`
    : r.exchange !== undefined ? (r.direction === "cex_to_dex" ? `${r.exchange} → ${r.chain}` : `${r.chain} → ${r.exchange}`)
      : "—");
  const fieldText = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v));
  RENDER.bridges = (d) => {
    const unhealthy = d.bridges.filter((b) => !b.healthy).length;
    put("bridges-cards",
      card("Bridges healthy", `${d.bridges.length - unhealthy} of ${d.bridges.length}`, unhealthy ? "bad" : "good"),
      card("Pending transfers", fmtInt(d.pending_total)),
      card("Stuck transfers", fmtInt(d.stuck_total), d.stuck_total ? "bad" : ""),
      card("Open opportunities", fmtInt(d.opportunities_total)),
      card("Opportunities found", fmtInt((d.graph.found ?? 0) + (d.graph.cex_found ?? 0))),  // each pool or book update's
      card("Max bridge time", secs(d.max_bridge_time)));
    put("bridges-table", table([
      { label: "Bridge", get: (r) => r.bridge },
      { label: "Health", get: (r) => h("span", { class: r.healthy ? "pill good" : "pill bad", "data-healthy": String(r.healthy) },
        r.healthy ? "healthy" : "unhealthy") },
      { label: "Kind", get: (r) => r.kind }, { label: "Use", get: (r) => r.use },
      { label: "Routes", num: true, get: (r) => fmtInt(r.routes) },
      { label: "Within max time", num: true, get: (r) => fmtInt(r.within_max_bridge_time) },
      { label: "Pending", num: true, get: (r) => fmtInt(r.pending) },
      { label: "Stuck", num: true, get: (r) => fmtInt(r.stuck), cls: (r) => (r.stuck ? "bad" : "") },
      { label: "Unmatched fills", num: true, get: (r) => fmtInt(r.fills_unmatched) },
      { label: "Why", wrap: true, get: (r) => r.why },
    ], d.bridges, { empty: "no bridge in the catalog" }));
    $("bridges-routes-note").textContent = `A route whose last 20 fills' p90 is above ${d.slow_factor}× its catalog fill time makes its bridge unhealthy; fill times are of the last 1,000 fills.`;
    put("bridges-routes", table([
      { label: "Bridge", get: (r) => r.bridge }, { label: "Route", wrap: true, get: (r) => r.route },
      { label: "Deposits", num: true, get: (r) => fmtInt(r.deposits) }, { label: "Fills", num: true, get: (r) => fmtInt(r.fills) },
      { label: "Pending", num: true, get: (r) => fmtInt(r.pending) },
      { label: "Failed", num: true, get: (r) => fmtInt(r.failures), cls: (r) => (r.failures ? "bad" : "") },
      { label: "Fill p50", num: true, get: (r) => secs(r.fill_s_p50) }, { label: "p90", num: true, get: (r) => secs(r.fill_s_p90) },
      { label: "p99", num: true, get: (r) => secs(r.fill_s_p99) }, { label: "Max", num: true, get: (r) => secs(r.fill_s_max) },
      { label: "Catalog", num: true, get: (r) => secs(r.catalog_fill_s) },
      { label: "Slow above", num: true, get: (r) => secs(r.slow_above_s),
        cls: (r) => (r.slow_above_s !== null && r.fill_s_p90 !== null && r.fill_s_p90 > r.slow_above_s ? "bad" : "") },
    ], d.routes, { scroll: true, empty: "no transfer seen yet (crosschain.watch follows the bridges' contracts)" }));
    put("bridges-pending", table([
      { label: "Bridge", get: (r) => r.bridge }, { label: "Route", wrap: true, get: (r) => r.route },
      { label: "Deposit", get: (r) => h("span", { title: r.deposit }, short(r.deposit, 24)) },
      { label: "Age", num: true, get: (r) => secs(r.age_s) },
      { label: "State", get: (r) => h("span", { class: r.stuck ? "pill bad" : "pill warn", "data-stuck": String(r.stuck) },
        r.stuck ? "stuck" : "pending") },
    ], d.pending, { scroll: true, empty: "nothing pending" }));
    put("bridges-opportunities", table([
      { label: "Found", get: (r) => (typeof r.found_at === "number" ? time(r.found_at) : r.found_at) },
      { label: "Kind", get: (r) => r.kind },
      { label: "Pair", get: (r) => h("span", { title: `${r.base} / ${r.quote}` }, `${short(r.base, 16)} / ${short(r.quote, 16)}`) },
      { label: "Buy → sell", get: (r) => venues(r) },
      { label: "Size (quote units)", num: true, get: (r) => r.amount_in },
      { label: "Expected net", num: true, get: (r) => usd(r.net_usd), cls: (r) => sign(r.net_usd) },
      { label: "Bridges", get: (r) => [r.base_route, r.quote_route].filter(Boolean).join(" · ") },
      { label: "Details", wrap: true, get: (r) => Object.entries(r).filter(([k]) => !OPP_SHOWN.has(k))
        .map(([k, v]) => `${k}: ${fieldText(v)}`).join(" · ") },
    ], d.opportunities, { scroll: true, empty: "no open cross-chain gap that pays after gas and bridge fees" }));
  };

  // A stuck position's open legs sold back again (the operator API's own call: audited, refused if not stuck).
  function unwindCell(r) {
    if (r.state !== "stuck" || !isOperator()) return "—";
    return h("button", { type: "button", "data-operator-only": true, "data-unwind": r.id, "aria-label": `Unwind ${r.id} again`,
      onclick: () => act(`/dashboard/act/positions/${encodeURIComponent(r.id)}/unwind`, {}, (a) => `Unwind ${short(a.id, 12)}: ${a.state}`) },
      "Unwind again");
  }

  function approveCell(r) {
    if (!isOperator()) return "—";
    if (r.requested_by === state.me.operator) return h("span", { class: "muted" }, "needs another operator");
    return h("button", { type: "button", class: "primary", "data-operator-only": true,
      onclick: () => act(`/dashboard/act/approvals/${r.id}/approve`, {}, (a) => `Approved: ${a.action}`) }, "Approve");
  }

  // Replace (same call, fees bumped) or cancel (0 to itself) at the stuck transaction's nonce, by its agent.
  function stuckActions(r) {
    if (!isOperator()) return "—";
    const tx = r.tx_hashes[r.tx_hashes.length - 1];
    const button = (action, label) => h("button", { type: "button", "data-operator-only": true, "data-stuck-action": action,
      "aria-label": `${label} ${tx}`,
      onclick: () => act(`/dashboard/act/transactions/stuck/${tx}/${action}`, {}, (a) => `${label}: ${a.result} (${a.detail})`) }, label);
    return h("span", { class: "inline" }, button("replace", "Replace"), button("cancel", "Cancel"));
  }

  function liveChains(d) {
    const chains = new Set([...d.live_chains]);
    for (const a of state.data.health?.agents || []) for (const c of a.chains) chains.add(c);
    for (const a of d.agents) for (const c of a.live_chains) chains.add(c);
    const rows = [...chains].sort().map((c) => {
      const live = d.live_chains.includes(c);
      return h("div", { class: "inline" }, h("span", {}, c), h("span", { class: live ? "pill bad" : "pill" }, live ? "live" : "dry-run"),
        h("button", { type: "button", "data-operator-only": true,
          onclick: () => act("/dashboard/act/live", { chain: c, live: !live }, (a) => `Live chains: ${a.live_chains.join(", ") || "none"}`) },
        live ? `Disable live on ${c}` : `Enable live on ${c}…`));
    });
    put("live-chains", ...(rows.length ? rows : [empty("no chain reported yet")]));
  }

  // ---- charts (uPlot, vendored from npm) -------------------------------------------------------------
  function palette() {
    const s = getComputedStyle(document.documentElement);
    return { fg: s.getPropertyValue("--fg").trim(), line: s.getPropertyValue("--line").trim(),
      series: s.getPropertyValue("--series").split(",").map((x) => x.trim()) };
  }

  function chart(key, el, names, data, yLabel) {
    if (!window.uPlot) return;
    const p = palette();
    const width = Math.max(300, el.clientWidth || 600);
    const signature = names.join("|") + document.documentElement.dataset.theme;
    const old = state.charts[key];
    if (old && old.signature === signature && old.el === el) { old.plot.setData(data); return; }
    if (old) old.plot.destroy();
    const axis = { stroke: p.fg, grid: { stroke: p.line, width: 1 }, ticks: { stroke: p.line } };
    const opts = {
      width, height: 240, legend: { show: true },
      scales: { x: { time: true } },
      axes: [axis, { ...axis, label: yLabel, size: 70 }],
      series: [{}, ...names.map((n, i) => ({ label: n, stroke: p.series[i % p.series.length], width: i === 0 ? 2.5 : 1.5 }))],
    };
    state.charts[key] = { plot: new uPlot(opts, data, el), signature, el };
  }

  function pnlChart(d) {
    // Cumulative net per chain and for the fleet, and the fleet's gas and builder payments, over the range's bins.
    const ts = [...new Set(d.series.map((s) => s[0]))].sort((a, b) => a - b);
    const chains = [...new Set(d.series.map((s) => s[1]))].sort();
    if (!ts.length) { destroyChart("pnl"); put("pnl-chart", empty("no live execution settled in this range")); return; }
    if (state.charts.pnl && !$("pnl-chart").querySelector(".uplot")) destroyChart("pnl");
    if (!state.charts.pnl) $("pnl-chart").replaceChildren();
    const index = new Map(ts.map((t, i) => [t, i]));
    const per = chains.map(() => new Array(ts.length).fill(0));
    const costs = [new Array(ts.length).fill(0), new Array(ts.length).fill(0)]; // gas, builder payments
    for (const [t, c, net, gas, builder] of d.series) {
      per[chains.indexOf(c)][index.get(t)] += net;
      costs[0][index.get(t)] += gas || 0;
      costs[1][index.get(t)] += builder || 0;
    }
    const cumulate = (row) => { let a = 0; return row.map((v) => (a += v)); };
    let cum = [...per.map(cumulate), ...costs.map(cumulate)];
    let fleet = ts.map((_, i) => cum.slice(0, chains.length).reduce((a, row) => a + row[i], 0));
    // The curve starts at 0 at the range's first instant and runs to now (or the range's end).
    const first = Date.parse(`${d.start}T00:00:00Z`) / 1000;
    const last = Math.min(Date.now() / 1000, Date.parse(`${d.end}T00:00:00Z`) / 1000 + 86400);
    let xs = ts;
    if (first < ts[0]) { xs = [first, ...xs]; fleet = [0, ...fleet]; cum = cum.map((row) => [0, ...row]); }
    if (last > xs[xs.length - 1]) { xs = [...xs, last]; fleet = [...fleet, fleet[fleet.length - 1]]; cum = cum.map((row) => [...row, row[row.length - 1]]); }
    chart("pnl", $("pnl-chart"), ["fleet", ...chains, "gas (fleet)", "builder payments (fleet)"], [xs, fleet, ...cum], "USD");
  }

  function latencyChart(d) {
    const ts = [...new Set(d.latency_series.map((s) => s[0]))].sort((a, b) => a - b);
    const names = [...new Set(d.latency_series.map((s) => s[1]))].sort();
    if (!ts.length) { destroyChart("latency"); put("health-chart", empty("no latency reported in the last 15 min")); return; }
    if (state.charts.latency && !$("health-chart").querySelector(".uplot")) destroyChart("latency");
    if (!state.charts.latency) $("health-chart").replaceChildren();
    const index = new Map(ts.map((t, i) => [t, i]));
    const cols = names.map(() => new Array(ts.length).fill(null));
    for (const [t, name, v] of d.latency_series) cols[names.indexOf(name)][index.get(t)] = v;
    chart("latency", $("health-chart"), names, [ts, ...cols], "s");
  }

  function destroyChart(key) {
    if (state.charts[key]) { state.charts[key].plot.destroy(); delete state.charts[key]; }
  }

  // ---- navigation, keyboard, theme -------------------------------------------------------------------
  function render(name) {
    const data = state.data[name];
    if (name === "feed" || data) RENDER[name](data);
  }

  async function show(name, focus) {
    if (!VIEWS.includes(name) || !served(name)) name = "pnl";
    state.view = name;
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
    for (const a of document.querySelectorAll("#tabs a")) {
      if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    if (state.data[name] || name === "feed") render(name);
    if (!state.data[name] || name in API_VIEWS) await load(name);
    if (focus) $("main").focus();
  }

  function keys(event) {
    if (event.target.closest("input, select, textarea, dialog") || event.ctrlKey || event.metaKey || event.altKey) return;
    const n = event.key === "0" ? 10 : Number(event.key);  // 1-9, then 0 for the tenth
    if (n >= 1 && n <= VIEWS.length) {
      const name = VIEWS[n - 1];
      if (served(name)) { location.hash = name; event.preventDefault(); }
    } else if (event.key in LETTERS) {
      const name = LETTERS[event.key];
      if (served(name)) { location.hash = name; event.preventDefault(); }
    } else if (event.key === "t") { cycleTheme(); }
  }

  const THEMES = ["auto", "light", "dark"];
  function applyTheme(theme) {
    if (theme === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    $("theme").textContent = `Theme: ${theme}`;
    for (const k of Object.keys(state.charts)) destroyChart(k);
    if (state.view) render(state.view);
  }
  function cycleTheme() {
    const now = localStorage.getItem("theme") || "auto";
    const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
    localStorage.setItem("theme", next);
    applyTheme(next);
  }

  // ---- controls (rendered for operators only: a viewer's page has none) --------------------------------
  const isOperator = () => state.me && state.me.role === "operator";

  function wireControls() {
    if (!isOperator()) {
      for (const el of document.querySelectorAll("[data-operator-only]")) el.remove();
      return;
    }
    const dialog = $("confirm-stop");
    $("btn-stop").addEventListener("click", () => { $("stop-confirm").value = ""; dialog.showModal(); $("stop-confirm").focus(); });
    $("stop-cancel").addEventListener("click", () => dialog.close());
    $("confirm-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if ($("stop-confirm").value.trim() !== "STOP") { toast("Type STOP to confirm", true); return; }
      dialog.close();
      act("/dashboard/act/emergency/stop", { reason: $("stop-reason").value.trim() }, (a) =>
        `Emergency stop engaged. Not answered: ${a.not_answered.join(", ") || "none"}`);
    });
    $("btn-resume").addEventListener("click", () =>
      act("/dashboard/act/emergency/resume", {}, () => "The emergency stop is not engaged"));
    const strategy = (resume) => {
      const name = $("strategy-name").value.trim();
      if (!$("strategy-name").reportValidity()) return;
      act(`/dashboard/act/strategies/${encodeURIComponent(name)}/${resume ? "resume" : "pause"}`, {},
        (a) => `${resume ? "Resumed" : "Paused"} ${name}: ${Object.entries(a.agents).map(([k, v]) => `${k} ${v}`).join(", ") || "no agent"}`);
    };
    $("strategy-control").addEventListener("submit", (event) => { event.preventDefault(); strategy(false); });
    $("strategy-resume").addEventListener("click", () => strategy(true));
    for (const id of ["lim-exposure", "lim-daily", "lim-losses"]) $(id).addEventListener("input", () => { $(id).dataset.edited = "1"; });
    $("limits-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const changes = {};
      const current = state.data.risk?.limits || {};
      for (const [id, key] of [["lim-exposure", "max_total_exposure_usd"], ["lim-daily", "daily_limit_usd"], ["lim-losses", "consecutive_losses"]]) {
        const v = Number($(id).value);
        if ($(id).value !== "" && v !== current[key]) changes[key] = key === "consecutive_losses" ? Math.round(v) : v;
        delete $(id).dataset.edited;
      }
      if (!Object.keys(changes).length) { toast("No limit changed"); return; }
      act("/dashboard/act/config/risk", changes, (a) => `Fleet limits applied: ${JSON.stringify(a.limits)}`);
    });
    for (const input of document.querySelectorAll("#agent-limits input[data-limit]")) {
      input.addEventListener("input", () => { input.dataset.edited = "1"; });
    }
    // Every agent's own limits: the edited fields, confirmed in a dialog (each agent's value now → the new one).
    const limitInputs = () => [...document.querySelectorAll("#agent-limits input[data-limit]")];
    const limitsDialog = $("confirm-limits");
    let pendingLimits = null;
    $("agent-limits").addEventListener("submit", (event) => {
      event.preventDefault();
      const changes = {};
      for (const input of limitInputs()) {
        if (input.dataset.edited && input.value !== "") {
          changes[input.dataset.limit] = input.dataset.limit === "max_consecutive_failures" ? Math.round(Number(input.value)) : Number(input.value);
        }
      }
      if (!Object.keys(changes).length) { toast("No limit changed"); return; }
      const agents = state.data.risk?.agents || [];
      put("confirm-limits-changes", ...Object.entries(changes).map(([key, value]) => {
        const now = agents.map((a) => `${a.name} ${a.own?.limits?.[key] ?? "?"}`).join(", ") || "no agent reported";
        return h("li", {}, h("strong", {}, key), `: ${now} → ${value}`);
      }));
      pendingLimits = changes;
      limitsDialog.showModal();
      $("limits-go").focus();
    });
    $("limits-cancel").addEventListener("click", () => { pendingLimits = null; limitsDialog.close(); });
    $("confirm-limits-form").addEventListener("submit", (event) => {
      event.preventDefault();
      limitsDialog.close();
      const changes = pendingLimits;
      pendingLimits = null;
      if (!changes) return;
      for (const input of limitInputs()) delete input.dataset.edited;
      act("/dashboard/act/limits/set", { changes }, (a) => {
        const acks = Object.entries(a.agents);
        const accepted = acks.length > 0 && acks.every(([, v]) => v === "acked");
        const each = acks.map(([k, v]) => `${k} ${v}`).join(", ") || "no agent";
        return { text: accepted ? `Agents' limits accepted: ${each}` : `Agents' limits not accepted by every agent: ${each}`, bad: !accepted };
      }, "agent-limits-answer");
    });
  }

  // ---- live ---------------------------------------------------------------------------------------------
  function connect() {
    if (state.source) state.source.close();
    const source = new EventSource("/dashboard/events");
    state.source = source;
    source.addEventListener("hello", () => { setText("hdr-conn", "live", "good"); });
    source.addEventListener("view", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.view === "pnl" && state.pnlRange) return; // a chosen range stays as read
      if ((msg.view === "strategy" || msg.view === "stuck") && state.hours !== 24) return;
      receive(msg.view, msg.data);
    });
    source.addEventListener("feed", (e) => {
      const { items } = JSON.parse(e.data);
      const now = Date.now();
      for (const item of items) {
        const key = item.opportunity_id + ":" + item.kind;
        if (!probe.arrivals[key]) { probe.arrivals[key] = now; probe.eventAt[key] = item.at; }
      }
      state.lastEvent = now;
      state.feed = items.concat(state.feed).slice(0, FEED_KEEP);
      if (state.view === "feed" && !$("feed-hold").checked) render("feed");
    });
    source.addEventListener("resync", () => { for (const v of Object.keys(state.data)) load(v); load("feed"); });
    source.onerror = () => {
      setText("hdr-conn", "reconnecting…", "warn");
      // A 401 ends the stream for good: find out whether the session is gone.
      if (source.readyState === EventSource.CLOSED) get("/dashboard/session").then(connect).catch(() => {});
    };
  }

  // ---- start ------------------------------------------------------------------------------------------
  async function start() {
    const wanted = (location.hash || "#pnl").slice(1);
    if (!state.me) for (const name of new Set([VIEWS.includes(wanted) && !(wanted in API_VIEWS) ? wanted : "pnl", "risk"])) prefetch(name);
    const me = await get("/dashboard/session");
    state.me = me;
    state.csrf = me.csrf;
    $("who").textContent = `${me.operator} (${me.role})`;
    $("tab-competition").hidden = !me.competition_url;
    $("tab-sandwiches").hidden = !me.sandwiches_url;
    $("tab-positions").hidden = !served("positions");
    $("tab-bridges").hidden = !served("bridges");
    $("login").hidden = true;
    $("app").hidden = false;
    if (!probe.wired) { wireControls(); probe.wired = true; }
    connect();
    const first = (location.hash || "#pnl").slice(1);
    // The header's figures come with the risk view (today's P&L included); other views load when opened.
    await Promise.all([show(first), first === "risk" ? null : load("risk")]);
    probe.ready = true;
    document.body.dataset.ready = "1";
    performance.mark("dashboard-interactive");
  }

  function boot() {
    applyTheme(localStorage.getItem("theme") || "auto");
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("theme").addEventListener("click", cycleTheme);
    document.addEventListener("keydown", keys);
    window.addEventListener("hashchange", () => show(location.hash.slice(1), true));
    $("pnl-range").addEventListener("submit", (event) => {
      event.preventDefault();
      const s = $("pnl-start").value, e = $("pnl-end").value || s;
      if (!s) { toast("Choose a start day", true); return; }
      state.pnlRange = [s, e];
      load("pnl");
    });
    $("pnl-today").addEventListener("click", () => { state.pnlRange = null; $("pnl-start").value = $("pnl-end").value = ""; load("pnl"); });
    $("strategy-hours").addEventListener("change", () => { state.hours = Number($("strategy-hours").value); load("strategy"); });
    $("feed-kind").addEventListener("change", () => render("feed"));
    for (const id of ["sandwich-hours", "sandwich-chain"]) $(id).addEventListener("change", () => load("sandwiches"));
    window.addEventListener("error", (e) => probe.errors.push(String(e.message)));
    // The system's light/dark changed: the charts take the new colours (the tables follow by CSS alone).
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme(localStorage.getItem("theme") || "auto"));
    new ResizeObserver(() => {
      for (const c of Object.values(state.charts)) c.plot.setSize({ width: Math.max(300, c.el.clientWidth), height: 240 });
    }).observe($("main"));
    start().catch((e) => (e.message === "logged out" ? null : showLogin()));
  }

  boot();
})();
