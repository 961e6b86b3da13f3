"use strict";
// agentbus dashboard: live feed over /ws, history and causal chains over
// /api/events, stats and the rate chart over /api/stats, dead letters over
// /api/dead-letters. No dependencies.

const TYPES = JSON.parse(document.getElementById("event-types").textContent);
const DOMAINS = ["agent", "memory", "circle", "task", "conversation", "system"];
const DOMAIN_RGB = {
  agent: [79, 156, 249], memory: [169, 112, 255], circle: [46, 196, 182],
  task: [245, 166, 35], conversation: [255, 107, 157], system: [239, 68, 68],
};
const MAX_EVENTS = 2000;   // kept in memory, newest first
const MAX_ROWS = 300;      // rendered at once
const TOKEN = new URLSearchParams(location.search).get("token");
// Works when the router is nested under a prefix (served at /prefix or /prefix/).
const BASE = location.pathname.replace(/\/+$/, "");

const $ = (id) => document.getElementById(id);
const state = {
  events: [], ids: new Set(), lastSeq: null, hasStore: null,
  paused: false, pending: [], selected: null, hiddenDomains: new Set(),
  socket: null, backoff: 250, lagged: 0, fresh: new Set(),
};

function withToken(path) {
  if (!TOKEN) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}
async function api(path) {
  const response = await fetch(withToken(BASE + path), { cache: "no-store" });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}
const domainOf = (type) => type.split(".")[0];

// Each type gets its domain's hue, lighter or darker by its place in the domain.
const TYPE_COLOR = {};
for (const domain of DOMAINS) {
  const members = TYPES.filter((t) => domainOf(t) === domain);
  members.forEach((type, i) => {
    const [r, g, b] = DOMAIN_RGB[domain];
    const k = members.length > 1 ? 0.65 + (0.6 * i) / (members.length - 1) : 1;
    const mix = (c) => Math.max(0, Math.min(255, Math.round(k <= 1 ? c * k : c + (255 - c) * (k - 1))));
    TYPE_COLOR[type] = `rgb(${mix(r)},${mix(g)},${mix(b)})`;
  });
}

// ---------------------------------------------------------------- events
function ingest(event, live) {
  if (event.sequence != null) {
    state.hasStore = true;
    if (state.lastSeq == null || event.sequence > state.lastSeq) state.lastSeq = event.sequence;
  }
  if (state.ids.has(event.id)) return;
  state.ids.add(event.id);
  event._text = JSON.stringify(event).toLowerCase();
  if (state.paused && live) {
    state.pending.push(event);
  } else {
    insert(event, live);
  }
  scheduleRender();
}

function insert(event, live) {
  // Newest first; live events are almost always the newest.
  const key = (e) => (e.sequence != null ? e.sequence : Date.parse(e.timestamp.replace(/(\.\d{3})\d+/, "$1")));
  const k = key(event);
  let i = 0;
  while (i < state.events.length && key(state.events[i]) > k) i++;
  state.events.splice(i, 0, event);
  if (live) state.fresh.add(event.id);
  while (state.events.length > MAX_EVENTS) {
    const old = state.events.pop();
    state.ids.delete(old.id);
    rows.delete(old.id);
  }
}

async function loadHistory() {
  const page = await api("/api/events?order=desc&limit=300");
  for (const event of page.events.reverse()) ingest(event, false);
}

// ---------------------------------------------------------------- socket
function connect() {
  const query = state.lastSeq != null ? "?after=" + state.lastSeq : "";
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + withToken(BASE + "/ws" + query));
  state.socket = socket;
  socket.onopen = () => { state.backoff = 250; setStatus(); };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.lagged != null) { state.lagged += event.lagged; scheduleRender(); return; }
    ingest(event, true);
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    state.socket = null;
    setStatus("reconnecting");
    setTimeout(reconnect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 4000);
  };
}

async function reconnect() {
  try {
    // Without a store there is no sequence to resume from: fill the gap
    // from the bus history instead (duplicates are dropped by id).
    if (state.lastSeq == null) await loadHistory();
    connect();
  } catch (error) {
    setTimeout(reconnect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 4000);
  }
}

function setStatus(forced) {
  const open = state.socket && state.socket.readyState === WebSocket.OPEN;
  const s = forced || (state.paused ? "paused" : open ? "live" : "reconnecting");
  $("status").dataset.state = s;
  $("status-text").textContent = s;
}

// ---------------------------------------------------------------- filters
function filters() {
  const num = (id) => { const v = $(id).value.trim(); return v === "" ? null : Number(v); };
  return {
    type: $("filter-type").value, circle: num("filter-circle"), agent: num("filter-agent"),
    project: num("filter-project"), text: $("filter-text").value.trim().toLowerCase(),
  };
}
function visible(event, f) {
  return (!f.type || event.type === f.type)
    && (f.circle == null || event.circle_id === f.circle)
    && (f.agent == null || event.source_agent_id === f.agent)
    && (f.project == null || event.project_id === f.project)
    && !state.hiddenDomains.has(domainOf(event.type))
    && (!f.text || event._text.includes(f.text));
}

// ---------------------------------------------------------------- render
const rows = new Map();
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => requestAnimationFrame(render), 60);
}

function clock(timestamp) {
  const d = new Date(timestamp.replace(/(\.\d{3})\d+/, "$1"));
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function row(event) {
  let li = rows.get(event.id);
  if (li) return li;
  li = document.createElement("li");
  li.className = "event d-" + domainOf(event.type);
  li.dataset.id = event.id;
  li.dataset.type = event.type;
  if (event.sequence != null) li.dataset.sequence = event.sequence;
  const time = document.createElement("time");
  time.textContent = clock(event.timestamp);
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = event.type;
  const summary = document.createElement("span");
  summary.className = "summary";
  for (const [label, value] of [["circle", event.circle_id], ["agent", event.source_agent_id], ["project", event.project_id]]) {
    if (value == null) continue;
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.append(label + " ");
    const b = document.createElement("b");
    b.textContent = value;
    tag.append(b);
    summary.append(tag);
  }
  const data = JSON.stringify(event.data);
  summary.append(data === "{}" ? "" : data.length > 180 ? data.slice(0, 180) + "…" : data);
  li.append(time, badge, summary);
  li.addEventListener("click", () => select(event));
  rows.set(event.id, li);
  return li;
}

function render() {
  renderQueued = false;
  const f = filters();
  const shown = [];
  let matching = 0;
  for (const event of state.events) {
    if (!visible(event, f)) continue;
    matching++;
    if (shown.length < MAX_ROWS) shown.push(event);
  }
  const feed = $("feed");
  const nodes = shown.map((event) => {
    const li = row(event);
    li.classList.toggle("selected", state.selected != null && state.selected.id === event.id);
    if (state.fresh.has(event.id)) {
      // A class and a timer, not a CSS animation: re-rendering moves rows,
      // which would restart an animation on every frame.
      li.classList.add("fresh");
      setTimeout(() => li.classList.remove("fresh"), 900);
    }
    return li;
  });
  state.fresh.clear();
  feed.replaceChildren(...nodes);
  $("feed-count").textContent = `${matching} of ${state.events.length} events`
    + (state.lagged ? ` · ${state.lagged} missed (too slow)` : "");
  const pending = $("pending");
  pending.hidden = state.pending.length === 0;
  pending.textContent = `${state.pending.length} new while paused`;
}

// ---------------------------------------------------------------- detail
function highlight(json) {
  const escaped = json.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return escaped.replace(/("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
    (m, str, colon, lit, num) => str ? (colon ? `<span class="k">${str}</span>${colon}` : `<span class="s">${str}</span>`)
      : lit ? `<span class="l">${lit}</span>` : `<span class="n">${num}</span>`);
}

async function select(event) {
  state.selected = event;
  $("detail-empty").hidden = true;
  $("detail-body").hidden = false;
  const badge = $("detail-type");
  badge.textContent = event.type;
  badge.className = "badge d-" + domainOf(event.type);
  const { _text, ...plain } = event;
  $("detail-json").innerHTML = highlight(JSON.stringify(plain, null, 2));
  scheduleRender();
  const chain = $("chain");
  chain.replaceChildren();
  const root = event.correlation_id || event.id;
  let members = [];
  try {
    members = (await api("/api/events?order=asc&limit=500&correlation_id=" + encodeURIComponent(root))).events;
  } catch (error) { /* shown as empty below */ }
  if (state.selected !== event) return;
  if (!members.some((m) => m.id === event.id)) members.push(event);
  const byId = new Map(members.map((m) => [m.id, m]));
  const depth = (m) => { let d = 0; let c = m; while (c && c.causation_id && byId.has(c.causation_id) && d < 32) { c = byId.get(c.causation_id); d++; } return d; };
  for (const member of members) {
    const li = document.createElement("li");
    li.className = "d-" + domainOf(member.type) + (member.id === event.id ? " current" : "");
    li.style.marginLeft = depth(member) * 14 + "px";
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = clock(member.timestamp);
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = member.type;
    li.append(when, badge);
    li.addEventListener("click", () => { member._text = member._text || JSON.stringify(member).toLowerCase(); select(member); });
    chain.append(li);
  }
  if (members.length === 1) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "no other event in this chain";
    chain.append(li);
  }
}

// ---------------------------------------------------------------- stats + chart
let rates = null;
async function pollStats() {
  try {
    const s = await api("/api/stats");
    const fmt = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));
    $("stat-published").textContent = fmt(s.events_published);
    $("stat-delivered").textContent = fmt(s.events_delivered);
    $("stat-failures").textContent = fmt(s.handler_errors);
    $("stat-failures").parentElement.classList.toggle("bad", s.handler_errors > 0);
    const rejected = s.events_rejected || 0;
    const other = rejected - s.events_deduplicated - s.events_rate_limited - s.events_invalid;
    $("stat-rejected").textContent = rejected === 0 ? "0" :
      `${fmt(rejected)} (dup ${fmt(s.events_deduplicated)} · rate ${fmt(s.events_rate_limited)} · ` +
      `invalid ${fmt(s.events_invalid)}${other > 0 ? ` · other ${fmt(other)}` : ""})`;
    $("stat-rejected").parentElement.classList.toggle("bad", rejected > 0);
    $("stat-retries").textContent = fmt(s.retries);
    $("stat-retrying").textContent = fmt(s.retries_pending);
    $("stat-timed-out").textContent = fmt(s.timed_out);
    $("stat-timed-out").parentElement.classList.toggle("bad", s.timed_out > 0);
    $("stat-dead-lettered").textContent = fmt(s.dead_lettered);
    $("stat-dead-letters").textContent = fmt(s.dead_letters);
    $("stat-dead-letters").parentElement.classList.toggle("bad", s.dead_letters > 0);
    deadLetters.held = s.dead_letters;
    refreshDeadLetters();
    $("stat-subscribers").textContent = fmt(s.active_subscribers);
    $("stat-clients").textContent = fmt(s.clients);
    $("stat-rate").textContent = s.publish_rate.toFixed(1) + "/s";
    $("stat-lag").textContent = s.store_lag == null ? (s.store ? "0" : "no store") : fmt(s.store_lag);
    rates = s.rates;
    drawChart();
  } catch (error) { /* the socket's status tells the story */ }
  setTimeout(pollStats, 1000);
}

// ---------------------------------------------------------------- dead letters
// The newest DEAD_LETTERS_SHOWN, refreshed with the stats (whose count says
// how many more there are). Everything in a letter (error, subscription
// name, event data) came from handlers or clients: it is set as text only.
const DEAD_LETTERS_SHOWN = 50;
const deadLetters = { held: 0, letters: [], rows: new Map(), busy: new Set(), generation: 0 };

async function refreshDeadLetters() {
  // A reply older than a redrive or discard could show a letter it removed.
  const generation = ++deadLetters.generation;
  let letters = [];
  if (deadLetters.held > 0 || deadLetters.letters.length > 0) {
    try {
      letters = (await api(`/api/dead-letters?order=desc&limit=${DEAD_LETTERS_SHOWN}`)).dead_letters;
    } catch (error) { return; }
  }
  if (generation !== deadLetters.generation) return;
  deadLetters.letters = letters;
  renderDeadLetters();
}

function deadLetterRow(letter) {
  let row = deadLetters.rows.get(letter.id);
  if (!row) {
    row = { tr: document.createElement("tr"), cells: {} };
    row.tr.dataset.id = letter.id;
    for (const name of ["id", "event", "subscription", "error", "attempts", "first", "last", "actions"]) {
      const td = document.createElement("td");
      td.className = "dl-" + name;
      row.cells[name] = td;
      row.tr.append(td);
    }
    const event = letter.event;
    const badge = document.createElement("span");
    badge.className = "badge d-" + domainOf(event.type);
    badge.textContent = event.type;
    badge.title = "show the event";
    badge.addEventListener("click", () => select({ ...event, _text: JSON.stringify(event).toLowerCase() }));
    const data = document.createElement("span");
    data.className = "data";
    data.textContent = JSON.stringify(event.data);
    row.cells.event.append(badge, data);
    row.cells.id.textContent = letter.id;
    row.cells.subscription.textContent = letter.subscription != null ? letter.subscription : letter.subscription_id;
    row.cells.first.textContent = clock(new Date(letter.first_failed_at_ms).toISOString());
    row.cells.first.title = new Date(letter.first_failed_at_ms).toISOString();
    for (const [action, label] of [["redrive", "↻ redrive"], ["discard", "✕ discard"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn small " + action;
      button.dataset.action = action;
      button.textContent = label;
      button.title = action === "redrive" ? "deliver the event again to its subscription, once" : "forget this dead letter";
      row.cells.actions.append(button);
    }
    deadLetters.rows.set(letter.id, row);
  }
  // A failed redrive updates these.
  row.cells.error.textContent = letter.error;
  row.cells.attempts.textContent = letter.attempts;
  row.cells.last.textContent = clock(new Date(letter.last_failed_at_ms).toISOString());
  row.cells.last.title = new Date(letter.last_failed_at_ms).toISOString();
  const busy = deadLetters.busy.has(letter.id);
  row.tr.classList.toggle("busy", busy);
  for (const button of row.cells.actions.children) button.disabled = busy;
  return row.tr;
}

function renderDeadLetters() {
  const { letters, rows } = deadLetters;
  const shown = new Set(letters.map((letter) => letter.id));
  for (const id of [...rows.keys()]) if (!shown.has(id)) rows.delete(id);
  const nodes = letters.map(deadLetterRow);
  const body = $("dlq-rows");
  // Rebuilt only when the set or order changes, so a click in progress is
  // not lost to a refresh.
  if (nodes.length !== body.children.length || nodes.some((node, i) => body.children[i] !== node)) {
    body.replaceChildren(...nodes);
  }
  $("dlq-table").hidden = letters.length === 0;
  const held = Math.max(deadLetters.held, letters.length);
  const more = held - letters.length;
  $("dlq-summary").textContent = held === 0 ? "none"
    : `${held.toLocaleString("en-US")} held` + (more > 0 ? ` · the newest ${letters.length} shown` : "");
  const line = $("dlq-more");
  line.hidden = more <= 0;
  line.textContent = `${more.toLocaleString("en-US")} more, older: agentbus dlq list, or GET /api/dead-letters`;
}

async function deadLetterAction(id, action) {
  if (deadLetters.busy.has(id)) return;
  deadLetters.busy.add(id);
  renderDeadLetters();
  const path = action === "redrive" ? `/api/dead-letters/${id}/redrive` : `/api/dead-letters/${id}`;
  let text, bad = false;
  try {
    const response = await fetch(withToken(BASE + path), { method: action === "redrive" ? "POST" : "DELETE", cache: "no-store" });
    if (response.ok) {
      text = action === "redrive" ? `dead letter ${id} redriven: delivered` : `dead letter ${id} discarded`;
      deadLetters.held = Math.max(0, deadLetters.held - 1);
      deadLetters.letters = deadLetters.letters.filter((letter) => letter.id !== id);
    } else {
      const reply = await response.json().catch(() => ({}));
      text = `${action} of dead letter ${id} failed: ${reply.error || response.status}`;
      bad = true;
    }
  } catch (error) {
    text = `${action} of dead letter ${id} failed: ${error.message}`;
    bad = true;
  }
  deadLetters.busy.delete(id);
  const message = $("dlq-message");
  message.textContent = text;
  message.classList.toggle("bad", bad);
  renderDeadLetters();
  refreshDeadLetters();
}

$("dlq-rows").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  deadLetterAction(Number(button.closest("tr").dataset.id), button.dataset.action);
});

let hover = null;
function drawChart() {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!rates) return;
  // Drop the current, still-filling second, and show from the first second
  // with events (at least a minute, at most the whole window).
  const full = Object.entries(rates.per_type).map(([type, counts]) => [type, counts.slice(0, -1)]);
  const length = rates.seconds - 1;
  let first = length;
  for (const [, counts] of full) {
    const i = counts.findIndex((c) => c > 0);
    if (i >= 0 && i < first) first = i;
  }
  const n = Math.max(60, length - first);
  const series = full.map(([type, counts]) => [type, counts.slice(length - n)]);
  $("chart-window").textContent = n >= 120 ? `last ${Math.round(n / 60)} minutes` : `last ${n} seconds`;
  const left = 44, right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  const totals = new Array(n).fill(0);
  for (const [, counts] of series) counts.forEach((c, i) => (totals[i] += c));
  const max = Math.max(1, ...totals);
  const step = niceStep(max / 4);
  const ymax = Math.ceil(max / step) * step;
  const x = (i) => left + (i / (n - 1)) * pw;
  const y = (v) => top + ph - (v / ymax) * ph;
  ctx.font = "11px ui-monospace, monospace";
  ctx.fillStyle = "#7d8ba1";
  ctx.strokeStyle = "#243044";
  ctx.lineWidth = 1;
  for (let v = 0; v <= ymax; v += step) {
    ctx.beginPath(); ctx.moveTo(left, Math.round(y(v)) + 0.5); ctx.lineTo(w - right, Math.round(y(v)) + 0.5); ctx.stroke();
    ctx.fillText(formatRate(v), 4, y(v) + 4);
  }
  const tick = n > 150 ? 60 : n > 80 ? 30 : 15;
  for (let ago = 0; ago < n; ago += tick) {
    const i = n - 1 - ago;
    const label = ago === 0 ? "now" : ago % 60 === 0 ? `-${ago / 60}m` : `-${ago}s`;
    ctx.fillText(label, Math.min(x(i) - 10, w - 30), h - 4);
  }
  series.sort((a, b) => TYPES.indexOf(a[0]) - TYPES.indexOf(b[0]));
  const base = new Array(n).fill(0);
  for (const [type, counts] of series) {
    ctx.beginPath();
    for (let i = 0; i < n; i++) ctx.lineTo(x(i), y(base[i] + counts[i]));
    for (let i = n - 1; i >= 0; i--) ctx.lineTo(x(i), y(base[i]));
    ctx.closePath();
    ctx.globalAlpha = 0.78;
    ctx.fillStyle = TYPE_COLOR[type] || "#888";
    ctx.fill();
    ctx.globalAlpha = 1;
    for (let i = 0; i < n; i++) base[i] += counts[i];
  }
  ctx.strokeStyle = "#dbe4f0aa";
  ctx.beginPath();
  for (let i = 0; i < n; i++) ctx.lineTo(x(i), y(base[i]));
  ctx.stroke();
  if (hover != null && hover >= 0 && hover < n) {
    ctx.strokeStyle = "#dbe4f088";
    ctx.beginPath(); ctx.moveTo(x(hover), top); ctx.lineTo(x(hover), top + ph); ctx.stroke();
  }
  const legend = series.map(([type, counts]) => [type, counts.reduce((a, b) => a + b, 0)])
    .sort((a, b) => b[1] - a[1]).slice(0, 10);
  $("legend").replaceChildren(...legend.map(([type]) => {
    const span = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = TYPE_COLOR[type];
    span.append(i, type);
    return span;
  }));
  chartGeometry = { left, pw, n, series };
}
let chartGeometry = null;
function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return Math.max(m * p, 1);
  return 10 * p;
}
function formatRate(v) { return v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + "k" : String(v); }

$("chart").addEventListener("mousemove", (e) => {
  if (!chartGeometry) return;
  const { left, pw, n, series } = chartGeometry;
  const rect = e.target.getBoundingClientRect();
  const i = Math.round(((e.clientX - rect.left - left) / pw) * (n - 1));
  if (i < 0 || i >= n) { hover = null; $("tooltip").hidden = true; drawChart(); return; }
  hover = i;
  const lines = series.map(([type, counts]) => [type, counts[i]]).filter(([, c]) => c > 0).sort((a, b) => b[1] - a[1]);
  const total = lines.reduce((a, [, c]) => a + c, 0);
  const tip = $("tooltip");
  tip.textContent = `${n - 1 - i}s ago · ${total}/s\n` + lines.slice(0, 8).map(([t, c]) => `${t.padEnd(26)} ${c}`).join("\n");
  tip.hidden = false;
  tip.style.left = Math.min(e.clientX - rect.left + 12, rect.width - 260) + "px";
  tip.style.top = "8px";
  drawChart();
});
$("chart").addEventListener("mouseleave", () => { hover = null; $("tooltip").hidden = true; drawChart(); });
window.addEventListener("resize", drawChart);

// ---------------------------------------------------------------- controls
for (const type of TYPES) {
  const option = document.createElement("option");
  option.value = option.textContent = type;
  $("filter-type").append(option);
}
for (const domain of DOMAINS) {
  const chip = document.createElement("span");
  chip.className = "chip on d-" + domain;
  chip.style.color = `rgb(${DOMAIN_RGB[domain].join(",")})`;
  chip.dataset.domain = domain;
  chip.textContent = domain;
  chip.addEventListener("click", () => {
    if (state.hiddenDomains.has(domain)) state.hiddenDomains.delete(domain); else state.hiddenDomains.add(domain);
    chip.classList.toggle("on", !state.hiddenDomains.has(domain));
    scheduleRender();
  });
  $("domains").append(chip);
}
for (const id of ["filter-type", "filter-circle", "filter-agent", "filter-project", "filter-text"]) {
  $(id).addEventListener("input", scheduleRender);
  $(id).addEventListener("change", scheduleRender);
}
$("pause").addEventListener("click", () => {
  state.paused = !state.paused;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(state.paused));
  button.textContent = state.paused ? "▶ resume" : "❚❚ pause";
  if (!state.paused) {
    for (const event of state.pending) insert(event, true);
    state.pending = [];
  }
  setStatus();
  scheduleRender();
});
$("detail-close").addEventListener("click", () => {
  state.selected = null;
  $("detail-empty").hidden = false;
  $("detail-body").hidden = true;
  scheduleRender();
});

reconnect();
pollStats();
