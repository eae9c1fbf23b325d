// labctl serve: the read-only page of a station. Our own code, no libraries: the live lists and the plots come
// from the server's events (/events); a plot keeps at most MAX_POINTS points, thinning its older half when full
// (as the server does), so a 600 h run stays light in the browser. Text from the server is set as text, never HTML.
"use strict";

const MAX_POINTS = 4000;
const COLORS = ["#1764b0", "#d0562a", "#2f8f4e", "#8a5fb0", "#b08a17", "#17a2b0", "#b0176d", "#555"];
const plots = new Map();   // key -> {points: [[row, x, y, series]], spec, labels, interruptions, canvas, legend}
let liveEntries = [];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") Object.assign(node.style, v);  // CSSOM, which the page's CSP allows (no inline style)
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (!isFinite(value)) return "—";
    if (Number.isInteger(value)) return String(value);
    const a = Math.abs(value);
    return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? value.toExponential((digits || 4) - 1) : value.toPrecision(digits || 5).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
  }
  return String(value);
}

function duration(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// -- the live runs ----------------------------------------------------------------------------------------------
function renderLive(entries) {
  liveEntries = entries;
  const box = document.getElementById("live");
  const keys = new Set(entries.map(e => e.key));
  for (const card of [...box.querySelectorAll(".card")]) if (!keys.has(card.dataset.key)) card.remove();
  for (const key of [...plots.keys()]) if (!keys.has(key)) plots.delete(key);
  box.querySelector(".empty")?.remove();
  if (!entries.length) { box.append(el("p", {class: "empty", text: "nothing running on this station"})); return; }
  let previous = null;
  for (const entry of entries) {
    let card = [...box.querySelectorAll(".card")].find(c => c.dataset.key === entry.key);
    if (!card) card = makeCard(entry);
    if (previous) previous.after(card); else box.prepend(card);
    previous = card;
    fillCard(card, entry);
  }
}

function makeCard(entry) {
  const canvas = el("canvas", {class: "plot"});
  const card = el("article", {class: "card", "data-key": entry.key, "data-points": "0"},
    el("div", {class: "left"}, el("h3"), el("div", {class: "sub"}), el("div", {class: "progress"}, el("div")),
       canvas, el("div", {class: "legend"})),
    el("div", {class: "right"}, el("dl", {class: "kv"}), el("h4", {text: "last values"}), el("dl", {class: "kv last"}),
       el("h4", {text: "events"}), el("ul", {class: "events"})));
  plots.set(entry.key, {points: [], spec: null, labels: {}, interruptions: [], canvas, legend: card.querySelector(".legend")});
  return card;
}

function fillCard(card, e) {
  const title = card.querySelector("h3");
  title.replaceChildren(`${e.procedure} · ${e.sample || "no sample"}${e.pixel ? " pixel " + e.pixel : ""} `,
                        el("span", {class: `badge ${e.status}`, text: e.status}));
  card.dataset.status = e.status;
  card.querySelector(".sub").textContent = `run ${e.run_id} · station ${e.station} · ${e.path || ""}`;
  const progress = typeof e.progress === "number" ? e.progress : 0;
  card.querySelector(".progress > div").style.width = `${(100 * progress).toFixed(1)}%`;
  const kv = card.querySelector("dl.kv");
  const rows = [["progress", typeof e.progress === "number" ? `${(100 * e.progress).toFixed(1)} %` : "—"]];
  if (e.status === "running") rows.push(["ETA", e.eta ? `${e.eta.replace("T", " ").replace("Z", " UTC")} (in ${duration(e.eta_s)})` : "—"]);
  rows.push(["started", (e.started || e.start_time || "—").replace("T", " ").slice(0, 19) + " UTC"]);
  if (e.ended || e.end_time) rows.push(["ended", (e.ended || e.end_time).replace("T", " ").slice(0, 19) + " UTC"]);
  if (e.reason) rows.push(["reason", e.reason]);
  const sus = e.suspensions || {};
  if (sus.current) rows.push(["suspended", {text: `now: ${sus.current}`, cls: "suspended"}]);
  if (sus.count) rows.push(["suspensions", `${sus.count}, ${duration(sus.total_s || 0)} in all`]);
  const rec = e.recovery || {};
  if (rec.faults && Object.keys(rec.faults).length)
    rows.push(["I/O faults", Object.entries(rec.faults).map(([k, n]) => `${k} ${n}`).join(", ") + `; recovered ${rec.recovered || 0}`]);
  // the procedure's live values (status_extra), one level of nesting flattened; nothing yet known (null) or false
  // flags are left out, so a stability run shows the figures it has (T80 once it is there), not forty dashes
  const shown = v => v !== null && v !== false && v !== undefined && typeof v !== "object";
  for (const [k, v] of Object.entries(e.extra || {})) {
    if (v && typeof v === "object") {
      for (const [k2, v2] of Object.entries(v)) if (shown(v2)) rows.push([`${k}: ${k2}`, fmt(v2, 4)]);
    } else if (shown(v)) rows.push([k, fmt(v, 4)]);
  }
  if (e.paused) rows.push(["paused", "yes"]);
  if (e.status === "interrupted") rows.push(["resume with", `labctl resume ${e.path}`]);
  if (e.plot_error) rows.push(["plot", e.plot_error]);
  fillKv(kv, rows);
  const last = [];
  for (const [stream, row] of Object.entries(e.last || {}))
    for (const [k, v] of Object.entries(row).slice(0, 10)) last.push([`${stream}: ${k}`, fmt(v)]);
  for (const [stream, n] of Object.entries(e.rows || {})) last.push([`${stream}: rows`, String(n)]);
  fillKv(card.querySelector("dl.last"), last);
  const events = card.querySelector("ul.events");
  events.replaceChildren(...(e.events || []).slice().reverse().map(line =>
    el("li", {class: /WARNING|suspended|error/i.test(line) ? "warn" : "", text: line})));
  const plot = plots.get(e.key);
  if (plot) {
    plot.spec = e.plot || null; plot.labels = e.labels || {}; plot.interruptions = e.interruptions || [];
    draw(e.key);
  }
}

function fillKv(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dd = typeof v === "object" ? el("dd", {class: v.cls, text: v.text}) : el("dd", {text: v});
    return [el("dt", {text: k}), dd];
  }));
}

function addPoints(batch) {
  for (const [key, points] of Object.entries(batch)) {
    let plot = plots.get(key);
    if (!plot) continue;
    for (const p of points) {
      if (plot.points.length >= MAX_POINTS) {
        const half = MAX_POINTS >> 1;
        plot.points = plot.points.slice(0, half).filter((_, i) => i % 2 === 0).concat(plot.points.slice(half));
      }
      plot.points.push(p);
    }
    const card = [...document.querySelectorAll(".card")].find(c => c.dataset.key === key);
    if (card) { card.dataset.points = String(plot.points.length); card.dataset.lastRow = String(points[points.length - 1][0]); }
    draw(key);
  }
}

// -- the plot: lines on a <canvas> ------------------------------------------------------------------------------
function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { const d = Math.abs(lo) * 0.05 || 1; lo -= d; hi += d; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  let decimals = 0;  // as many as the step needs (2.5 needs one, 0.25 two)
  while (decimals < 12 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6 * step * 10 ** decimals) decimals++;
  return {lo, hi, ticks, label: t => (Math.abs(t) >= 1e6 || (Math.abs(t) < 1e-4 && t !== 0)) ? t.toExponential(2) : t.toFixed(decimals)};
}

function draw(key) {
  const plot = plots.get(key);
  if (!plot) return;
  const canvas = plot.canvas, ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600, height = canvas.clientHeight || 320;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const spec = plot.spec;
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#66707a";
  if (!spec) { ctx.fillText("no data to plot yet", 60, height / 2); plot.legend.replaceChildren(); return; }
  const logX = !!spec.x_log;
  const tx = v => (logX ? (v > 0 ? Math.log10(v) : null) : v);
  let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
  for (const [, x, y] of plot.points) {
    const X = x === null ? null : tx(x);
    if (X === null || y === null) continue;
    if (X < xlo) xlo = X; if (X > xhi) xhi = X; if (y < ylo) ylo = y; if (y > yhi) yhi = y;
  }
  for (const [s, e] of plot.interruptions) { if (!logX && s !== null && e !== null) { xlo = Math.min(xlo, s); xhi = Math.max(xhi, e); } }
  const left = 84, right = 14, top = 10, bottom = 42;
  const w = width - left - right, h = height - top - bottom;
  ctx.strokeStyle = "#d9dee3"; ctx.strokeRect(left, top, w, h);
  if (!isFinite(xlo) || !isFinite(ylo)) { ctx.fillText("waiting for the first points…", left + 20, top + h / 2); plot.legend.replaceChildren(); return; }
  const xUnit = spec.x_hours ? (xhi < 0.05 ? [1 / 3600, "s"] : xhi < 2 ? [1 / 60, "min"] : [1, "h"]) : [1, ""];
  const xt0 = niceTicks(xlo / xUnit[0], xhi / xUnit[0], 6);
  const xt = {lo: xt0.lo * xUnit[0], hi: xt0.hi * xUnit[0], ticks: xt0.ticks.map(t => t * xUnit[0]), label: xt0.label};
  const yt = niceTicks(ylo, yhi, 5);
  const px = X => left + (X - xt.lo) / (xt.hi - xt.lo) * w;
  const py = y => top + h - (y - yt.lo) / (yt.hi - yt.lo) * h;
  ctx.fillStyle = "rgba(160, 90, 44, 0.15)";
  for (const [s, e] of plot.interruptions) if (!logX && s !== null && e !== null) ctx.fillRect(px(s), top, Math.max(1, px(e) - px(s)), h);
  ctx.fillStyle = "#66707a"; ctx.strokeStyle = "#eef1f4"; ctx.lineWidth = 1;
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const t of xt.ticks) {
    const X = px(t); ctx.beginPath(); ctx.moveTo(X, top); ctx.lineTo(X, top + h); ctx.stroke();
    ctx.fillText(logX ? fmt(Math.pow(10, t), 3) : xt.label(t / xUnit[0]), X, top + h + 4);
  }
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const t of yt.ticks) {
    const Y = py(t); ctx.beginPath(); ctx.moveTo(left, Y); ctx.lineTo(left + w, Y); ctx.stroke();
    ctx.fillText(yt.label(t), left - 5, Y);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "bottom";
  const xLabel = spec.x_hours ? spec.x_label.replace("(h)", `(${xUnit[1]})`) : spec.x_label;
  ctx.fillText(xLabel + (logX ? " (log)" : ""), left + w / 2, height - 2);
  ctx.save(); ctx.translate(4, top + h / 2); ctx.rotate(-Math.PI / 2); ctx.textBaseline = "top";
  ctx.fillText(spec.y_label, 0, 0); ctx.restore();
  const bySeries = new Map();
  for (const p of plot.points) { if (!bySeries.has(p[3])) bySeries.set(p[3], []); bySeries.get(p[3]).push(p); }
  const legend = [];
  let k = 0;
  ctx.save(); ctx.beginPath(); ctx.rect(left, top, w, h); ctx.clip();
  for (const [series, points] of bySeries) {
    const color = COLORS[k++ % COLORS.length];
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    let pen = false, lastX = null;
    // no line drawn across an interruption (a suspension, a recovery): the device was not measured there
    const across = (a, b) => !logX && plot.interruptions.some(([s, e]) => s !== null && e !== null && a <= s && b >= e);
    for (const [, x, y] of points) {
      const X = x === null ? null : tx(x);
      if (X === null || y === null) { pen = false; continue; }
      if (pen && !across(lastX, X)) ctx.lineTo(px(X), py(y)); else { ctx.moveTo(px(X), py(y)); pen = true; }
      lastX = X;
    }
    ctx.stroke();
    if (points.length < 60) { ctx.fillStyle = color; for (const [, x, y] of points) { const X = x === null ? null : tx(x); if (X !== null && y !== null) ctx.fillRect(px(X) - 2, py(y) - 2, 4, 4); } }
    if (spec.series) legend.push(el("span", {}, el("i", {style: {background: color}}), plot.labels[String(series)] || `${spec.series} ${series}`));
  }
  ctx.restore();
  if (plot.interruptions.length) legend.push(el("span", {}, el("i", {style: {background: "rgba(160,90,44,0.35)", height: "8px"}}), "interruptions"));
  legend.push(el("span", {text: `${plot.points.length} points shown`}));
  plot.legend.replaceChildren(...legend);
}

// -- recent runs ------------------------------------------------------------------------------------------------
const FIGURE_NAMES = {voc_V: ["Voc", "V"], jsc_mA_cm2: ["Jsc", "mA/cm²"], ff: ["FF", ""], pce_pct: ["PCE", "%"],
  jsc_integrated_mA_cm2: ["Jsc(EQE)", "mA/cm²"], eqe_max: ["EQE max", ""], ideality: ["n", ""], t80_h: ["T80", "h"],
  stabilised_pce_pct: ["PCE stab.", "%"], plqy: ["PLQY", ""]};

function renderRecent(runs) {
  const body = document.querySelector("#recent tbody");
  body.replaceChildren(...runs.map(r => {
    const figs = Object.entries(r.figures || {}).map(([k, v]) => {
      const [name, unit] = FIGURE_NAMES[k] || [k, ""];
      return `${name} ${fmt(v, 4)}${unit ? " " + unit : ""}`;
    }).join(", ");
    const button = r.has_file && r.status !== "running" ? el("button", {type: "button", text: "figure"}) : null;
    if (button) button.addEventListener("click", () => showFigure(r));
    return el("tr", {"data-key": r.key},
      el("td", {text: (r.start_time || "—").replace("T", " ").slice(0, 19)}), el("td", {text: r.station}),
      el("td", {text: r.run_id}), el("td", {text: r.procedure}),
      el("td", {text: (r.sample || "") + (r.pixel ? ` pixel ${r.pixel}` : "")}),
      el("td", {}, el("span", {class: `badge ${r.status}`, text: r.status})),
      el("td", {class: "figs", text: figs || "—"}), el("td", {}, button));
  }));
}

function showFigure(r) {
  const box = document.getElementById("figure-box");
  document.getElementById("figure-title").textContent = `${r.procedure} · ${r.sample} · ${r.run_id} (${r.station})`;
  document.getElementById("figure").src = `/figure?station=${encodeURIComponent(r.station)}&run_id=${encodeURIComponent(r.run_id)}`;
  box.hidden = false;
}

// -- the events -------------------------------------------------------------------------------------------------
function header(data) {
  document.getElementById("station").textContent = `— station ${data.station}`;
  document.title = `labctl — ${data.station}`;
  const error = document.getElementById("error");
  error.hidden = !data.error; error.textContent = data.error || "";
}

function connect() {
  const conn = document.getElementById("connection");
  const source = new EventSource("/events");
  source.addEventListener("open", () => {
    conn.textContent = "live"; conn.className = "conn on";
    for (const plot of plots.values()) plot.points = [];  // a new stream sends every kept point again
  });
  source.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "conn off"; });
  source.addEventListener("live", ev => { const d = JSON.parse(ev.data); header(d); renderLive(d.live); });
  source.addEventListener("recent", ev => { const d = JSON.parse(ev.data); header(d); renderRecent(d.recent); });
  source.addEventListener("points", ev => addPoints(JSON.parse(ev.data)));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("figure-close").addEventListener("click", () => { document.getElementById("figure-box").hidden = true; });
  window.addEventListener("resize", () => { for (const key of plots.keys()) draw(key); });
  connect();
});
