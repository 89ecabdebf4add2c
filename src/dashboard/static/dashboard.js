// The dashboard's page script. It draws every `figure.chart` (charts.js) from
// `/api/runs/:id/metrics` and wires the chart controls; on the page of a run that is training
// (`body[data-live]`) it appends the points that arrive over Server-Sent Events and refreshes the
// page's `data-region` blocks (cards, final metrics, epochs) from the server as epochs end; on the
// runs list it refreshes the list while runs train; and it keeps live durations ticking. Pages
// work without it: every table is rendered on the server.
import { ChartView, duration } from "./charts.js";

/** How often the runs list is fetched again while a run in it trains. */
const LIST_REFRESH_MS = 5000;
/** Per-step keys: they move the charts and counters but change no server-rendered block. */
const STEP_KEYS = new Set(["train_loss_step"]);

/** run id → metric key → {epoch: [], step: [], value: [], time: []} */
const metrics = new Map();
const cursors = new Map();

async function load(run) {
  const res = await fetch(`/api/runs/${encodeURIComponent(run)}/metrics`);
  if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
  const body = await res.json();
  metrics.set(run, body.series);
  cursors.set(run, body.cursor);
}

function append(run, points) {
  const byKey = metrics.get(run);
  for (const p of points) {
    const s = byKey[p.key] ??= { epoch: [], step: [], value: [], time: [] };
    s.epoch.push(p.epoch);
    s.step.push(p.step);
    s.value.push(p.value);
    s.time.push(p.time);
  }
}

function setField(name, text) {
  for (const el of document.querySelectorAll(`[data-field="${name}"]`)) el.textContent = text;
}

/** Durations of runs in training count up between two refreshes. */
function tick() {
  for (const el of document.querySelectorAll("[data-since]")) {
    const since = Date.parse(el.dataset.since);
    if (Number.isFinite(since)) el.textContent = duration(Math.max(0, (Date.now() - since) / 1000));
  }
}

/**
 * Replaces each `data-region` block with the same block of a fresh copy of this page, keeping
 * the compare checkboxes ticked. Calls made while one is on its way run once after it.
 */
let refreshing = null;
let again = false;
function refreshRegions() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const res = await fetch(location.href, { headers: { accept: "text/html" } });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const checked = new Set(
        [...document.querySelectorAll("input[name=ids]:checked")].map((el) => el.value),
      );
      for (const el of document.querySelectorAll("[data-region]")) {
        const fresh = doc.querySelector(`[data-region="${el.dataset.region}"]`);
        if (fresh) el.replaceWith(document.importNode(fresh, true));
      }
      for (const el of document.querySelectorAll("input[name=ids]")) {
        if (checked.has(el.value)) el.checked = true;
      }
      tick();
    } finally {
      refreshing = null;
      if (again) {
        again = false;
        refreshRegions();
      }
    }
  })();
  return refreshing;
}

/** The chart controls: shown once this script runs, their state shared by every chart. */
function controlsOf(form, redraw) {
  const state = { x: "step", smooth: 0, log: false, metric: "ndcg@10" };
  if (!form) return state;
  const read = () => {
    state.x = form.elements.x.value;
    state.smooth = Number(form.elements.smooth.value);
    state.log = form.elements.log.checked;
    state.metric = `${form.elements.family.value}@${form.elements.k.value}`;
    form.elements.smoothValue.value = state.smooth.toFixed(2);
  };
  read();
  form.hidden = false;
  form.addEventListener("input", () => {
    read();
    redraw();
  });
  form.addEventListener("submit", (e) => e.preventDefault());
  return state;
}

function follow(run, charts) {
  let queued = false;
  const redraw = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      for (const c of charts) c.draw();
      const steps = metrics.get(run).train_loss_step?.step;
      if (steps?.length) setField("steps", String(steps[steps.length - 1]));
      const epochs = metrics.get(run).train_loss?.epoch;
      if (epochs?.length) setField("epochs", String(epochs[epochs.length - 1]));
    });
  };
  const url = `/api/runs/${encodeURIComponent(run)}/events?after=${cursors.get(run) ?? 0}`;
  const source = new EventSource(url);
  document.body.dataset.stream = "open";
  source.addEventListener("metrics", (e) => {
    const points = JSON.parse(e.data).points;
    append(run, points);
    redraw();
    // An epoch ended (its loss, validation or test rows): the tables and cards change.
    if (points.some((p) => !STEP_KEYS.has(p.key))) refreshRegions();
  });
  source.addEventListener("status", () => refreshRegions());
  source.addEventListener("end", async () => {
    source.close();
    await refreshRegions();
    document.body.dataset.stream = "ended";
  });
}

function followList(region) {
  const live = () => Number(document.querySelector("[data-region=runs]")?.dataset.liveRuns ?? 0);
  if (!region || !live()) return;
  const timer = setInterval(async () => {
    await refreshRegions();
    if (!live()) clearInterval(timer);
  }, LIST_REFRESH_MS);
}

async function main() {
  setInterval(tick, 1000);
  followList(document.querySelector("[data-region=runs]"));
  const figures = [...document.querySelectorAll("figure.chart")];
  if (!figures.length) return;
  let charts = [];
  const controls = controlsOf(
    document.querySelector("form.chart-controls"),
    () => charts.forEach((c) => c.draw()),
  );
  charts = figures.map((el) => new ChartView(el, metrics, controls));
  const runs = [...new Set(charts.flatMap((c) => c.runs()))];
  try {
    await Promise.all(runs.map(load));
  } catch (e) {
    for (const c of charts) c.note.textContent = `error: ${e}`;
    return;
  }
  for (const c of charts) c.draw();
  const resized = new ResizeObserver(() => charts.forEach((c) => c.resize()));
  for (const c of charts) resized.observe(c.box);
  // Axis and grid colours come from the colour scheme: a change of scheme redraws them.
  matchMedia("(prefers-color-scheme: dark)")
    .addEventListener("change", () => charts.forEach((c) => c.rebuild()));
  const live = document.body.dataset.live;
  if (live && metrics.has(live)) follow(live, charts);
}

main();
