// Pages render once on the server: there is no reconciliation for `key` props to serve, and hono
// would print them as attributes.
// deno-lint-ignore-file jsx-key
/**
 * The frame every page shares and the pieces several pages use. hono/jsx escapes every text and
 * attribute value, so run names and config strings always render as text. Tables work without
 * JavaScript; charts are figures that the client script fills from the JSON API.
 */
import type { Child } from "hono/jsx";
import * as fmt from "../format.ts";
import type { FinalMetrics } from "../metrics.ts";
import type { RunView } from "../runs.ts";

export function Layout(
  props: {
    title: string;
    children: Child;
    /** Loads uPlot and the chart script. */
    charts?: boolean;
    /** Loads the script without charts (live lists). */
    script?: boolean;
    /** Reloads the page every so many seconds (a sweep in progress, without JavaScript). */
    refresh?: number;
    /** The id of a training run whose page follows it live. */
    live?: string;
  },
) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        {props.refresh ? <meta http-equiv="refresh" content={String(props.refresh)} /> : null}
        <title>{props.title} · cutrec</title>
        {/* No favicon request: the dashboard serves nothing it does not need. */}
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href="/static/style.css" />
        {props.charts ? <link rel="stylesheet" href="/static/uPlot.min.css" /> : null}
      </head>
      <body data-live={props.live}>
        <header class="top">
          <a class="brand" href="/">cutrec</a>
          <nav>
            <a href="/">runs</a>
            <a href="/#sweeps">sweeps</a>
          </nav>
        </header>
        <main>{props.children}</main>
        {props.charts ? <script src="/static/uPlot.iife.min.js"></script> : null}
        {props.charts || props.script
          ? <script type="module" src="/static/dashboard.js"></script>
          : null}
      </body>
    </html>
  );
}

export function Badge(props: { status: string }) {
  return (
    <span class={`badge status-${props.status}`} data-field="status">
      {fmt.statusText(props.status)}
    </span>
  );
}

/** A table that scrolls inside its own box on a narrow screen instead of widening the page. */
export function Scroll(props: { children: Child }) {
  return <div class="scroll">{props.children}</div>;
}

export function KeyValueTable(props: { entries: Record<string, unknown> }) {
  return (
    <Scroll>
      <table class="config">
        <tbody>
          {Object.entries(props.entries).map(([k, v]) => (
            <tr>
              <th>{k}</th>
              <td>{fmt.configValue(k, v)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}

/** The hidden field that every form which changes something carries (see csrf.ts). */
export function CsrfField(props: { token: string }) {
  return <input type="hidden" name="csrf" value={props.token} />;
}

export const FAMILY_NAMES: Record<string, string> = {
  hr: "HR",
  ndcg: "NDCG",
  mrr: "MRR",
  coverage: "Coverage",
};

export const RANKING_KS = [1, 5, 10, 20, 100];

/** What a chart's y axis measures; the client script titles and formats the axis from it. */
export type ChartUnit = "loss" | "metric" | "bytes" | "seconds" | "tokens";

/** One line of a chart: a run's metric key (`{metric}` is the picked ranking metric). */
export interface ChartSeries {
  run: string;
  key: string;
  label: string;
  /** Sequences per step, for the "sequences seen" x axis. */
  batch: number | null;
  /** The run's start (Unix seconds), for the wall-time x axis. */
  start: number;
}

/** A chart that the client script draws from `/api/runs/:id/metrics`. */
export function Chart(
  props: {
    title: string;
    unit: ChartUnit;
    series: ChartSeries[];
    /** The y series follow the page's metric picker; MostPop's test value is a reference line. */
    picker?: boolean;
  },
) {
  const spec = JSON.stringify({
    title: props.title,
    unit: props.unit,
    picker: props.picker ?? false,
    series: props.series,
  });
  return (
    <figure class="chart" data-chart={spec} data-points="0">
      <figcaption>{props.title}</figcaption>
      <div class="plot"></div>
      <div class="legend"></div>
      <p class="chart-note">no points yet</p>
    </figure>
  );
}

/**
 * The controls every chart of a page follows: x axis, smoothing, log scale, ranking metric. They
 * stay hidden until the script runs, since without it there is nothing for them to act on.
 */
export function ChartControls() {
  return (
    <>
      <noscript>
        <p class="note">Charts need JavaScript; the tables below hold the same numbers.</p>
      </noscript>
      <form class="chart-controls" hidden>
        <label>
          x axis
          <select name="x">
            <option value="step">step</option>
            <option value="sequences">sequences seen</option>
            <option value="time">wall time</option>
          </select>
        </label>
        <label>
          smoothing <output name="smoothValue">0</output>
          <input type="range" name="smooth" min="0" max="0.99" step="0.01" value="0" />
        </label>
        <label class="inline">
          <input type="checkbox" name="log" /> log scale
        </label>
        <label>
          ranking metric
          <span class="pair">
            <select name="family" aria-label="metric family">
              {Object.entries(FAMILY_NAMES).map(([v, name]) => (
                <option value={v} selected={v === "ndcg"}>{name}</option>
              ))}
            </select>
            <select name="k" aria-label="cut-off">
              {RANKING_KS.map((k) => <option value={String(k)} selected={k === 10}>@{k}</option>)}
            </select>
          </span>
        </label>
      </form>
    </>
  );
}

export function chartSeries(run: RunView, key: string, label: string): ChartSeries {
  return { run: run.id, key, label, batch: run.batchSize, start: Date.parse(run.createdAt) / 1000 };
}

/** Test NDCG@10 against MostPop's on the same users: "0.2945 vs 0.0270 (10.9×)". */
export function VersusMostPop(props: { final: FinalMetrics; metric?: string }) {
  const key = props.metric ?? "ndcg@10";
  const test = props.final.test[key];
  const pop = props.final.mostpopTest[key];
  if (test === undefined || pop === undefined) return <>{fmt.DASH}</>;
  return (
    <>
      {fmt.metric(test)} <span class="vs">vs {fmt.metric(pop)}</span>{" "}
      <span class="ratio">{pop > 0 ? `(${(test / pop).toFixed(1)}×)` : ""}</span>
    </>
  );
}

export function runHref(id: string): string {
  return `/runs/${encodeURIComponent(id)}`;
}

export function sweepHref(id: string): string {
  return `/sweeps/${encodeURIComponent(id)}`;
}
