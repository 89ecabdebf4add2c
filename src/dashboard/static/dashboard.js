// The dashboard's only script. It draws every `figure.chart` with uPlot from
// `/api/runs/:id/metrics`, and on the page of a run that is training (`body[data-live]`) it
// appends the points that arrive over Server-Sent Events. Pages work without it: tables are
// rendered on the server.
(() => {
  "use strict";
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2"];
  /** Whole epochs and steps on the x axis. */
  const COUNT_INCRS = [1, 2, 5]
    .flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7].map((d) => m * d))
    .sort((a, b) => a - b);
  /** Round binary sizes (50 MiB, 1 GiB) on a memory axis. */
  const BYTE_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500]
    .flatMap((m) => [1, 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4].map((u) => m * u))
    .sort((a, b) => a - b);
  /** run id → metric key → {epoch: [], step: [], value: []} */
  const metrics = new Map();
  const cursors = new Map();

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
  }

  function seriesOf(run, key) {
    return metrics.get(run)?.[key];
  }

  /** uPlot wants one shared x array: the union of the series' x values, gaps as null. */
  function align(pairs) {
    if (pairs.length === 1) return [pairs[0][0].slice(), pairs[0][1].slice()];
    const xs = [...new Set(pairs.flatMap(([x]) => x))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    return [
      xs,
      ...pairs.map(([x, y]) => {
        const out = new Array(xs.length).fill(null);
        x.forEach((xi, i) => (out[index.get(xi)] = y[i]));
        return out;
      }),
    ];
  }

  class ChartView {
    constructor(el) {
      this.el = el;
      this.spec = JSON.parse(el.dataset.chart);
      this.box = el.querySelector(".plot");
      this.plot = null;
      this.shown = "";
    }

    runs() {
      return this.spec.series.map((s) => s.run);
    }

    /** Redraws; the plot is rebuilt only when the set of series that have points changes. */
    draw() {
      const present = this.spec.series
        .map((s, i) => ({ ...s, color: COLORS[i % COLORS.length] }))
        .filter((s) => seriesOf(s.run, s.key)?.value.length);
      let points = 0;
      for (const s of present) points += seriesOf(s.run, s.key).value.length;
      this.el.dataset.points = String(points);
      if (!present.length) return;
      const data = align(present.map((s) => {
        const d = seriesOf(s.run, s.key);
        return [d[this.spec.x], d.value];
      }));
      const shown = present.map((s) => `${s.run} ${s.key}`).join("|");
      if (this.plot && shown === this.shown) {
        this.plot.setData(data);
        return;
      }
      this.plot?.destroy();
      this.shown = shown;
      this.plot = new uPlot(this.options(present, data[0].length), data, this.box);
    }

    options(present, n) {
      const unit = this.spec.unit;
      return {
        width: this.width(),
        height: 220,
        scales: { x: { time: false } },
        axes: [
          { label: this.spec.x, incrs: COUNT_INCRS },
          {
            size: unit === "bytes" ? 72 : 56,
            incrs: unit === "bytes" ? BYTE_INCRS : undefined,
            values: unit === "bytes"
              ? (_, ticks) => ticks.map((v) => (v === null ? "" : bytes(v)))
              : undefined,
          },
        ],
        series: [
          { label: this.spec.x },
          ...present.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 1.5,
            spanGaps: true,
            points: { show: n <= 60 },
            value: unit === "bytes"
              ? (_, v) => (v === null ? "—" : bytes(v))
              : (_, v) => (v === null ? "—" : Number(v.toPrecision(5)).toString()),
          })),
        ],
      };
    }

    width() {
      return Math.max(this.box.clientWidth, 240);
    }

    resize() {
      this.plot?.setSize({ width: this.width(), height: 220 });
    }
  }

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
      const s = byKey[p.key] ??= { epoch: [], step: [], value: [] };
      s.epoch.push(p.epoch);
      s.step.push(p.step);
      s.value.push(p.value);
    }
  }

  function setField(name, text) {
    for (const el of document.querySelectorAll(`[data-field="${name}"]`)) el.textContent = text;
  }

  /** The run page's step and epoch counters, from the points received so far. */
  function progress(run) {
    const steps = seriesOf(run, "train_loss_step")?.step;
    if (steps?.length) setField("steps", String(steps[steps.length - 1]));
    const epochs = seriesOf(run, "train_loss")?.epoch;
    if (epochs?.length) setField("epochs", String(epochs[epochs.length - 1]));
  }

  function follow(run, charts) {
    let queued = false;
    const redraw = () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        for (const c of charts) c.draw();
        progress(run);
      });
    };
    const url = `/api/runs/${encodeURIComponent(run)}/events?after=${cursors.get(run) ?? 0}`;
    const source = new EventSource(url);
    document.body.dataset.stream = "open";
    source.addEventListener("metrics", (e) => {
      append(run, JSON.parse(e.data).points);
      redraw();
    });
    source.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      for (const el of document.querySelectorAll('[data-field="status"]')) {
        el.textContent = s.status;
        el.className = `badge status-${s.status}`;
      }
      if (s.bestValidNdcg10 !== null) setField("bestValidNdcg10", s.bestValidNdcg10.toFixed(4));
      if (s.peakBytes !== null) setField("peakBytes", bytes(s.peakBytes));
    });
    source.addEventListener("end", () => {
      source.close();
      document.body.dataset.stream = "ended";
      // The server renders the final tables; a reload shows them.
      setTimeout(() => location.reload(), 1500);
    });
  }

  async function main() {
    const charts = [...document.querySelectorAll("figure.chart")].map((el) => new ChartView(el));
    if (!charts.length) return;
    const runs = [...new Set(charts.flatMap((c) => c.runs()))];
    try {
      await Promise.all(runs.map(load));
    } catch (e) {
      for (const c of charts) c.el.querySelector(".chart-note").textContent = `error: ${e}`;
      return;
    }
    for (const c of charts) c.draw();
    addEventListener("resize", () => charts.forEach((c) => c.resize()));
    const live = document.body.dataset.live;
    if (live && metrics.has(live)) follow(live, charts);
  }

  main();
})();
