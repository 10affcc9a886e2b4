// The boards' one script: polls its JSON endpoint every second, draws the figures, and says "STALE" when the
// pipeline stops answering. No library, nothing fetched from the internet.
"use strict";

const POLL_MS = 1000;           // the boards update at least every 2 s: one poll a second
const STALE_AFTER_MS = 3500;    // no good answer for this long: the figures are stale
const QUIET_AFTER_S = 60;       // the worker answers but has taken no event for this long: say so

const board = document.body.dataset.board;
const endpoint = document.body.dataset.endpoint;
let lastOk = 0;
let lastData = null;
let lastError = "";

const GRADE_TEXT = { ok: "✓ ok", warn: "▲ near", bad: "✕ off target", none: "– no data" };
const STAFF_TEXT = { ok: "✓ covered", warn: "▲ 1 short", bad: "✕ short", none: "– no data" };

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%"; }
function dur(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
}
function clock(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return "–";
  return new Date(epochSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}
function grade(g, texts, target) {
  const t = target ? `<span class="of">${esc(target)}</span>` : "";
  return `<span class="grade" data-grade="${esc(g)}">${esc((texts || GRADE_TEXT)[g] || g)}${t}</span>`;
}
// Dates and times in the queue's own time zone (the browser's ICU data: nothing fetched)
function localDate(epochSeconds, zone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date(epochSeconds * 1000));
}
function localTime(epochSeconds, zone) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit" }).format(new Date(epochSeconds * 1000));
}
function fig(label, field, value, extra, big) {
  return `<span class="fig${big ? " big" : ""}"><span class="label">${esc(label)}</span>` +
    `<span class="value" data-field="${esc(field)}">${esc(value)}</span>${extra || ""}</span>`;
}
const WORST = { bad: 3, warn: 2, ok: 1, none: 0 };
function worst(grades) { return grades.reduce((a, g) => (WORST[g] > WORST[a] ? g : a), "none"); }

function drawWallboard(data) {
  const tiles = document.getElementById("tiles");
  if (!data.queues.length) {
    tiles.innerHTML = '<div class="empty">No queue has had traffic yet.</div>';
    return;
  }
  tiles.innerHTML = data.queues.map((q) => {
    // two spans: this interval and today (the worker's own state), or the last 5 and 30 min (Prometheus)
    const t = q.targets, short = q[data.windows.short.key], span = q[data.windows.long.key], a = q.agents;
    const shortLabel = data.windows.short.label, longLabel = data.windows.long.label;
    const when = span.start === null ? data.windows.note :
      `today ${localDate(span.start, q.time_zone)} · interval ${localTime(short.start, q.time_zone)}`;
    const tileGrade = worst([short.service_level_grade, span.service_level_grade, q.oldest_wait_grade,
      span.abandon_rate_grade, span.asa_grade, q.staffing_grade]);
    return `<section class="tile" data-queue="${esc(q.queue)}" data-channel="${esc(q.channel)}" data-grade="${tileGrade}">
  <h2>${esc(q.queue)} · ${esc(q.channel)} <span class="meta">team ${esc(q.team)} · ${esc(when)} (${esc(q.time_zone)})</span></h2>
  <div class="row cols-2">
    ${fig("SL " + shortLabel, "short.service_level", pct(short.service_level), grade(short.service_level_grade), true)}
    ${fig("SL " + longLabel, "long.service_level", pct(span.service_level), grade(span.service_level_grade), true)}
  </div>
  <div class="target">target ${pct(t.service_level)} within ${t.service_level_threshold_seconds} s · ${esc(t.service_level_variant.replaceAll("_", " "))}</div>
  <div class="row cols-4">
    ${fig("waiting", "waiting", q.waiting, "", true)}
    ${fig("oldest wait", "oldest_wait", dur(q.oldest_wait_seconds), grade(q.oldest_wait_grade, null, "≤ " + dur(t.oldest_wait_seconds)), true)}
    ${fig("required", "required", q.required === null ? "–" : q.required, "", true)}
    ${fig("staffed", "staffed", q.staffed, grade(q.staffing_grade, STAFF_TEXT), true)}
  </div>
  <div class="section">${esc(longLabel)}</div>
  <div class="row cols-5">
    ${fig("offered", "long.offered", span.offered)}
    ${fig("answered", "long.answered", span.answered)}
    ${fig("abandoned", "long.abandoned", span.abandoned)}
    ${fig("ASA", "long.asa", dur(span.asa_seconds), grade(span.asa_grade, null, "≤ " + dur(t.asa_seconds)))}
    ${fig("abandon", "long.abandon_rate", pct(span.abandon_rate), grade(span.abandon_rate_grade, null, "≤ " + pct(t.abandon_rate)))}
  </div>
  <div class="section">agents now</div>
  <div class="row cols-5 agents">
    ${fig("available", "agents.available", a.available)}
    ${fig("on contact", "agents.on_contact", a.on_contact)}
    ${fig("ACW", "agents.acw", a.acw)}
    ${fig("not ready", "agents.not_ready", a.not_ready)}
    ${fig("logged in", "agents.logged_in", a.logged_in)}
  </div>
</section>`;
  }).join("");
}

function filterOptions(select, values, label) {
  const chosen = select.value;
  const want = ["", ...values];
  const have = Array.from(select.options).map((o) => o.value);
  if (want.join("\n") !== have.join("\n")) {
    select.innerHTML = want.map((v) => `<option value="${esc(v)}">${esc(v || label)}</option>`).join("");
    select.value = want.includes(chosen) ? chosen : "";
  }
}

function adherenceText(r) {
  if (r.adherent === null) return '<span class="grade" data-grade="none">– not scheduled</span>';
  if (r.adherent) return '<span class="grade" data-grade="ok">✓ in adherence</span>';
  const g = r.exception ? "bad" : "warn";
  const word = r.exception ? "✕ EXCEPTION out" : "▲ out";
  return `<span class="grade" data-grade="${g}">${word} ${esc(dur(r.out_of_adherence_seconds))}</span>` +
    `<span class="target"> (limit ${esc(dur(r.exception_threshold_seconds))})</span>`;
}

function drawAgents(data) {
  const qf = document.getElementById("queue-filter"), tf = document.getElementById("team-filter");
  filterOptions(qf, data.queues, "all queues");
  filterOptions(tf, data.teams, "all teams");
  const onlyExceptions = document.getElementById("exceptions-only").checked;
  const cols = data.columns;  // rows come as arrays in this column order (pipeline.exposition.boards)
  const all = data.agents.map((a) => Object.fromEntries(cols.map((c, i) => [c, a[i]])));
  const rows = all.filter((r) =>
    (!qf.value || r.queues.includes(qf.value)) && (!tf.value || r.teams.includes(tf.value)) &&
    (!onlyExceptions || r.exception));
  // adherence exceptions first, then the others out of adherence (longest first), then by agent
  const rank = (r) => (r.exception ? 0 : r.adherent === false ? 1 : 2);
  rows.sort((a, b) => rank(a) - rank(b) || (b.out_of_adherence_seconds || 0) - (a.out_of_adherence_seconds || 0) ||
    (a.agent < b.agent ? -1 : 1));
  document.getElementById("count").textContent = `${rows.length} of ${all.length} agents`;
  document.getElementById("agents").innerHTML = rows.map((r) => `<tr data-agent="${esc(r.agent)}" data-exception="${r.exception}">
<td data-field="agent">${esc(r.agent)}</td>
<td data-field="state">${esc(r.state.replaceAll("_", " "))}</td>
<td data-field="reason">${esc(r.reason || "")}</td>
<td class="num" data-field="in_state">${esc(dur(r.in_state_seconds))}</td>
<td data-field="contact">${r.contact_queue ? esc(`${r.contact_queue} · ${r.contact_channel} · ${dur(r.contact_age_seconds)}`) : ""}</td>
<td class="num" data-field="handled">${r.handled_today}</td>
<td class="num" data-field="aht">${esc(dur(r.aht_today_seconds))}</td>
<td data-field="planned">${esc((r.planned || "–").replaceAll("_", " "))}</td>
<td data-field="adherence">${adherenceText(r)}</td>
<td data-field="queues">${esc(r.queues.join(", "))}</td></tr>`).join("");
}

function showStatus() {
  const status = document.getElementById("status");
  const age = Date.now() - lastOk;
  if (!lastOk || age > STALE_AFTER_MS) {
    status.dataset.state = "stale";
    status.textContent = lastOk
      ? `STALE — pipeline down? no answer for ${dur(age / 1000)} (figures of ${new Date(lastOk).toLocaleTimeString()})`
      : "STALE — no answer from the pipeline yet";
    if (lastError) status.title = lastError;
    document.getElementById("source").textContent = lastError || document.getElementById("source").textContent;
    document.body.classList.add("stale");
    return;
  }
  document.body.classList.remove("stale");
  const quiet = lastData && lastData.last_batch_seconds_ago !== null && lastData.last_batch_seconds_ago > QUIET_AFTER_S;
  status.dataset.state = quiet ? "quiet" : "live";
  status.textContent = quiet
    ? `LIVE · no events for ${dur(lastData.last_batch_seconds_ago)}`
    : `LIVE · updated ${(age / 1000).toFixed(1)} s ago`;
}

async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 2000);
  try {
    const resp = await fetch(endpoint, { cache: "no-store", signal: abort.signal });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      throw new Error(body.error || `HTTP ${resp.status}`);
    }
    const data = await resp.json();
    (board === "wallboard" ? drawWallboard : drawAgents)(data);
    document.getElementById("source").textContent = data.source.note;
    document.getElementById("source").dataset.kind = data.source.kind;
    document.getElementById("as-of").textContent = `event time ${clock(data.event_time)}`;
    lastData = data;
    lastOk = Date.now();
    lastError = "";
    document.body.dataset.at = String(data.event_time);  // the moment the figures are of
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } catch (e) {
    // a refused connection, a timeout, or the worker saying what failed: stale once STALE_AFTER_MS has passed
    lastError = e.name === "AbortError" ? "no answer" : String(e.message || e);
  } finally {
    clearTimeout(timer);
    showStatus();
  }
}

for (const id of ["queue-filter", "team-filter", "exceptions-only"]) {
  const el = document.getElementById(id);
  if (el) el.addEventListener("change", () => lastData && drawAgents(lastData));
}
setInterval(showStatus, 500);
setInterval(poll, POLL_MS);
poll();
