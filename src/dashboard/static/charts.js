// Charts of a page, drawn with uPlot (loaded before this module as the global `uPlot`). Every
// chart follows the page's controls (x axis, smoothing, log scale, ranking metric); their
// cursors are synced; the legend shows each line's latest value, or the value under the cursor.

/** Line colours, readable on the light and the dark background. */
const COLORS = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#06b6d4"];
const CHART_HEIGHT = 220;
/** Markers are drawn while a line has at least this many pixels per point. */
const MARKER_SPACING = 8;

/** Whole steps and sequences on the x axis. */
const COUNT_INCRS = [1, 2, 5]
  .flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9].map((d) => m * d))
  .sort((a, b) => a - b);
/** Round binary sizes (50 MiB, 1 GiB) on a memory axis. */
const BYTE_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500]
  .flatMap((m) => [1, 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4].map((u) => m * u))
  .sort((a, b) => a - b);

const X_TITLES = {
  step: "step",
  sequences: "sequences seen (steps × batch size)",
  time: "wall time since the run started",
};

const FAMILIES = { hr: "HR", ndcg: "NDCG", mrr: "MRR", coverage: "Coverage" };

/** "ndcg@10" → "NDCG@10" */
function metricName(metric) {
  const [family, k] = metric.split("@");
  return `${Object.hasOwn(FAMILIES, family) ? FAMILIES[family] : family}@${k}`;
}

function yTitle(unit, metric) {
  if (unit === "loss") return "loss (nats)";
  if (unit === "metric") return `validation ${metricName(metric)}`;
  if (unit === "bytes") return "GPU memory";
  if (unit === "tokens") return "tokens per second";
  return "seconds";
}

/** Bytes in binary units, as the server writes them (src/gpu/allocator.ts formatBytes). */
export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

/** A duration as the server writes it (src/dashboard/format.ts duration). */
export function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (v) => String(v).padStart(2, "0");
  return h ? `${h} h ${pad(m)} min` : `${m} min ${pad(s % 60)} s`;
}

/** Short axis ticks of wall time: "45 s", "12 min", "3.5 h". */
function shortDuration(s) {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${+(s / 60).toFixed(1)} min`;
  return `${+(s / 3600).toFixed(1)} h`;
}

function number(v) {
  return Number(v.toPrecision(5)).toString();
}

/**
 * Exponential moving average with the start-up bias removed (as TensorBoard smooths): after n
 * points the weights sum to 1 − αⁿ, so dividing by it keeps the first points where they were.
 */
export function smooth(values, alpha) {
  if (!alpha) return values;
  let avg = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null) return null;
    n++;
    avg = avg * alpha + (1 - alpha) * v;
    return avg / (1 - alpha ** n);
  });
}

/** uPlot wants one shared x array: the union of the series' x values, gaps as null. */
function align(pairs) {
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

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A colour at some opacity: the faint raw line behind a smoothed one. */
function faint(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export class ChartView {
  /**
   * @param el the chart's figure (its spec in data-chart)
   * @param metrics run id → metric key → {epoch, step, value, time}
   * @param controls the page's control state {x, smooth, log, metric}
   */
  constructor(el, metrics, controls) {
    this.el = el;
    this.spec = JSON.parse(el.dataset.chart);
    this.metrics = metrics;
    this.controls = controls;
    this.box = el.querySelector(".plot");
    this.legendBox = el.querySelector(".legend");
    this.note = el.querySelector(".chart-note");
    this.plot = null;
    this.shape = "";
    this.markers = false;
    this.lines = [];
    this.refs = [];
  }

  runs() {
    return this.spec.series.map((s) => s.run);
  }

  keyOf(series) {
    return series.key.replace("{metric}", this.controls.metric);
  }

  /** One line's x and y values under the current controls, or null when it has none. */
  line(s, i) {
    const d = this.metrics.get(s.run)?.[this.keyOf(s)];
    if (!d?.value.length) return null;
    const { x: mode, log } = this.controls;
    let xs;
    if (mode === "step") xs = d.step;
    else if (mode === "sequences") xs = d.step.map((st) => (s.batch ? st * s.batch : null));
    else xs = d.time.map((t) => (t === null ? null : t - s.start));
    const pts = [];
    xs.forEach((x, j) => {
      if (x === null) return;
      const v = d.value[j];
      pts.push([x, log && v <= 0 ? null : v]);
    });
    if (!pts.length) return null;
    pts.sort((a, b) => a[0] - b[0]);
    const raw = pts.map((p) => p[1]);
    return {
      label: s.label,
      color: COLORS[i % COLORS.length],
      x: pts.map((p) => p[0]),
      raw,
      y: smooth(raw, this.controls.smooth),
    };
  }

  /**
   * MostPop's test value of the picked metric as a dashed line: one per distinct value, named
   * after the runs it belongs to unless every line shares it (runs on the same users do).
   */
  references(lines) {
    if (!this.spec.picker || !lines.length) return [];
    const key = `mostpop_test_${this.controls.metric}`;
    const byValue = new Map();
    this.spec.series.forEach((s, i) => {
      const v = this.metrics.get(s.run)?.[key]?.value.at(-1);
      if (v === undefined || (this.controls.log && v <= 0)) return;
      if (!byValue.has(v)) byValue.set(v, []);
      byValue.get(v).push({ label: s.label, color: COLORS[i % COLORS.length] });
    });
    return [...byValue].map(([value, owners]) => {
      const all = owners.length === this.spec.series.length;
      return {
        value,
        color: all ? cssVar("--muted") : owners[0].color,
        label: all ? "MostPop test" : `MostPop test (${owners.map((o) => o.label).join(", ")})`,
      };
    });
  }

  /** Redraws; the plot is rebuilt only when what it draws changes shape. */
  draw() {
    const lines = this.spec.series.map((s, i) => this.line(s, i)).filter((l) => l !== null);
    const points = lines.reduce((n, l) => n + l.raw.length, 0);
    this.el.dataset.points = String(points);
    this.lines = lines;
    this.refs = this.references(lines);
    if (!lines.length) {
      this.plot?.destroy();
      this.plot = null;
      this.shape = "";
      this.legendBox.textContent = "";
      // Points that exist but have no x under this axis say why.
      const missing = {
        time: "no wall times recorded for these points (written before the store kept them)",
        sequences: "no batch size recorded for these runs",
      };
      this.note.textContent = this.anyPoints() && Object.hasOwn(missing, this.controls.x)
        ? missing[this.controls.x]
        : "no points yet";
      this.el.dataset.points = "0";
      return;
    }
    const smoothing = this.controls.smooth > 0;
    const pairs = lines.flatMap((l) => smoothing ? [[l.x, l.raw], [l.x, l.y]] : [[l.x, l.y]]);
    const data = align(pairs);
    const longest = Math.max(...lines.map((l) => l.raw.length));
    this.markers = longest <= this.width() / MARKER_SPACING;
    this.el.dataset.markers = this.markers ? "on" : "off";
    const c = this.controls;
    const shape = [
      lines.map((l) => l.label).join("|"),
      c.x,
      c.log,
      smoothing,
      c.metric,
      this.refs.map((r) => r.value).join(","),
    ].join(" ");
    if (this.plot && shape === this.shape) {
      this.plot.setData(data);
    } else {
      this.plot?.destroy();
      this.shape = shape;
      this.plot = new uPlot(this.options(lines, smoothing), data, this.box);
    }
    this.legend(null);
  }

  anyPoints() {
    return this.spec.series.some((s) => this.metrics.get(s.run)?.[this.keyOf(s)]?.value.length);
  }

  options(lines, smoothing) {
    const unit = this.spec.unit;
    const { x: mode, log } = this.controls;
    const fg = cssVar("--muted");
    const grid = cssVar("--line");
    const axis = (label, extra) => ({
      label,
      stroke: fg,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      ...extra,
    });
    const yValues = unit === "bytes"
      ? (_, ticks) => ticks.map((v) => (v === null ? "" : bytes(v)))
      : undefined;
    const series = [{}];
    for (const l of lines) {
      if (smoothing) {
        series.push({ stroke: faint(l.color, 0.28), width: 1, spanGaps: true, points: noPoints });
      }
      series.push({
        stroke: l.color,
        width: 1.75,
        spanGaps: true,
        points: { show: () => this.markers, size: 5 },
      });
    }
    return {
      width: this.width(),
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { sync: { key: "cutrec" }, points: { size: 6 } },
      scales: {
        x: { time: false },
        y: { distr: log ? 3 : 1, range: (_, min, max) => this.range(min, max) },
      },
      axes: [
        axis(X_TITLES[mode], {
          incrs: mode === "time" ? undefined : COUNT_INCRS,
          values: mode === "time"
            ? (_, ticks) => ticks.map((v) => (v === null ? "" : shortDuration(v)))
            : undefined,
        }),
        axis(`${yTitle(unit, this.controls.metric)}${log ? ", log scale" : ""}`, {
          size: unit === "bytes" ? 76 : 60,
          incrs: unit === "bytes" && !log ? BYTE_INCRS : undefined,
          values: yValues,
        }),
      ],
      series,
      hooks: {
        setCursor: [(u) => this.legend(u.cursor.idx)],
        draw: [(u) => this.drawReferences(u)],
        setScale: [(u, key) => key === "y" && this.describe(u)],
      },
    };
  }

  /** The y range: room for the reference lines; memory from zero (unless on a log scale). */
  range(min, max) {
    let lo = min;
    let hi = max;
    for (const r of this.refs) {
      lo = Math.min(lo, r.value);
      hi = Math.max(hi, r.value);
    }
    if (this.controls.log) return uPlot.rangeLog(lo, hi, 10, true);
    const zero = this.spec.unit === "bytes";
    if (zero) lo = 0;
    const [a, b] = uPlot.rangeNum(lo, hi === lo ? lo + Math.abs(lo || 1) * 0.1 : hi, 0.1, true);
    return [zero ? 0 : a, b];
  }

  /**
   * The axes in words, for screen readers (the canvas is opaque to them) and for tests: what is
   * plotted against what, and the y range shown.
   */
  describe(u) {
    const { x: mode, log } = this.controls;
    const y = `${yTitle(this.spec.unit, this.controls.metric)}${log ? ", log scale" : ""}`;
    const fmt = this.spec.unit === "bytes" ? bytes : number;
    const { min, max } = u.scales.y;
    this.box.setAttribute("role", "img");
    this.box.setAttribute(
      "aria-label",
      `${y} from ${fmt(min)} to ${fmt(max)}, against ${X_TITLES[mode]}`,
    );
  }

  drawReferences(u) {
    const ctx = u.ctx;
    ctx.save();
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    for (const r of this.refs) {
      const y = u.valToPos(r.value, "y", true);
      ctx.strokeStyle = r.color;
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
    }
    ctx.restore();
  }

  /** Each line's value at the cursor's point, or its latest value when the cursor is away. */
  legend(idx) {
    const items = this.lines.map((l) => {
      let v;
      if (idx === null || idx === undefined || !this.plot) v = l.raw.findLast((y) => y !== null);
      else {
        const x = this.plot.data[0][idx];
        const j = l.x.indexOf(x);
        v = j < 0 ? undefined : l.raw[j];
      }
      return { color: l.color, label: l.label, value: v, dashed: false };
    });
    for (const r of this.refs) {
      items.push({ color: r.color, label: r.label, value: r.value, dashed: true });
    }
    const latest = idx === null || idx === undefined;
    const rows = items.map((it) => {
      const row = document.createElement("span");
      row.className = "item";
      const swatch = document.createElement("i");
      swatch.className = it.dashed ? "swatch dashed" : "swatch";
      swatch.style.borderColor = it.color;
      const value = document.createElement("b");
      value.textContent = it.value === undefined || it.value === null
        ? "—"
        : this.spec.unit === "bytes"
        ? bytes(it.value)
        : number(it.value);
      row.append(swatch, `${it.label}${it.dashed ? "" : latest ? " (latest)" : ""} `, value);
      return row;
    });
    if (this.controls.smooth > 0) {
      // The lines are smoothed; the values beside them are the measured ones.
      const note = document.createElement("span");
      note.className = "item smoothing";
      note.textContent = `EMA ${this.controls.smooth.toFixed(2)}, values unsmoothed`;
      rows.push(note);
    }
    this.legendBox.replaceChildren(...rows);
  }

  width() {
    return Math.max(this.box.clientWidth, 200);
  }

  resize() {
    this.plot?.setSize({ width: this.width(), height: CHART_HEIGHT });
  }

  rebuild() {
    this.shape = "";
    this.draw();
  }
}

const noPoints = { show: false };
