// Pages render once on the server: there is no reconciliation for `key` props to serve, and hono
// would print them as attributes.
// deno-lint-ignore-file jsx-key
/**
 * Server-rendered pages (hono/jsx escapes every text and attribute value, so run names and
 * config strings always render as text). Tables work without JavaScript; charts are figures
 * that the client script fills from the JSON API.
 */
import type { Child } from "hono/jsx";
import type { SweepRecord, SweepSummary, SweepView } from "../store/sweeps.ts";
import type { EpochRow, FinalMetrics } from "./metrics.ts";
import { metricGrid } from "./metrics.ts";
import { type HeatCell, show, type SweepLayout, trialPeak } from "./heatmap.ts";
import { type RunView, unusedObjectiveKeys } from "./runs.ts";
import { type RunQuery, type SortColumn } from "./query.ts";
import { queryString } from "./query.ts";
import * as fmt from "./format.ts";

export function Layout(
  props: {
    title: string;
    children: Child;
    /** Loads uPlot and the chart script. */
    charts?: boolean;
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
        {props.charts ? <script src="/static/dashboard.js"></script> : null}
      </body>
    </html>
  );
}

function Badge(props: { status: string }) {
  return (
    <span class={`badge status-${props.status}`} data-field="status">
      {fmt.statusText(props.status)}
    </span>
  );
}

const COLUMNS: [SortColumn, string, boolean][] = [
  ["name", "run", false],
  ["status", "status", false],
  ["dataset", "dataset", false],
  ["loss", "loss", false],
  ["negatives", "negatives", true],
  ["batch", "batch", true],
  ["ndcg", "best NDCG@10", true],
  ["peak", "peak memory", true],
  ["duration", "duration", true],
  ["created", "started", false],
];

function SortHeader(props: { column: SortColumn; label: string; num: boolean; q: RunQuery }) {
  const { column, q } = props;
  const active = q.sort === column;
  const dir = active && q.dir === "desc" ? "asc" : active ? "desc" : props.num ? "desc" : "asc";
  const href = `/${queryString({ ...q, sort: column, dir })}`;
  return (
    <th
      class={props.num ? "num" : undefined}
      aria-sort={active ? (q.dir === "asc" ? "ascending" : "descending") : undefined}
    >
      <a href={href}>
        {props.label}
        {active ? (q.dir === "asc" ? " ▲" : " ▼") : ""}
      </a>
    </th>
  );
}

function Select(props: { name: string; label: string; value: string; options: string[] }) {
  return (
    <label>
      {props.label}
      <select name={props.name}>
        <option value="">all</option>
        {props.options.map((o) => <option value={o} selected={o === props.value}>{o}</option>)}
      </select>
    </label>
  );
}

export function RunsPage(
  props: {
    runs: RunView[];
    total: number;
    datasets: string[];
    losses: string[];
    sweeps: SweepSummary[];
    q: RunQuery;
    runsDir: string;
  },
) {
  const { q } = props;
  return (
    <Layout title="runs">
      <h1>Runs</h1>
      <form class="filters" method="get" action="/">
        <Select
          name="status"
          label="status"
          value={q.status}
          options={["running", "lost", "finished", "failed", "stopped"]}
        />
        <Select name="dataset" label="dataset" value={q.dataset} options={props.datasets} />
        <Select name="loss" label="loss" value={q.loss} options={props.losses} />
        <label>
          name
          <input type="search" name="q" value={q.q} placeholder="name or id" />
        </label>
        <input type="hidden" name="sort" value={q.sort} />
        <input type="hidden" name="dir" value={q.dir} />
        <button type="submit">filter</button>
        <a href="/">reset</a>
      </form>
      {props.total === 0
        ? (
          <p class="empty-state">
            No runs in <code>{props.runsDir}</code> yet: start one with{" "}
            <code>deno task train</code>.
          </p>
        )
        : (
          <form method="get" action="/compare">
            <p class="count">
              {props.runs.length} of {props.total} runs{" "}
              <button type="submit">compare selected (2–5)</button>
            </p>
            <table class="runs">
              <thead>
                <tr>
                  <th>
                    <span class="sr">compare</span>
                  </th>
                  {COLUMNS.map(([column, label, num]) => (
                    <SortHeader column={column} label={label} num={num} q={q} />
                  ))}
                </tr>
              </thead>
              <tbody>
                {props.runs.map((r) => (
                  <tr>
                    <td>
                      <input
                        type="checkbox"
                        name="ids"
                        value={r.id}
                        aria-label={`compare ${r.id}`}
                      />
                    </td>
                    <td>
                      <a href={`/runs/${encodeURIComponent(r.id)}`}>{r.name}</a>
                      <div class="sub">{r.id}</div>
                    </td>
                    <td>
                      <Badge status={r.status} />
                    </td>
                    <td>{r.dataset}</td>
                    <td>{r.loss ?? fmt.DASH}</td>
                    <td class="num">{r.objective ?? fmt.DASH}</td>
                    <td class="num">{fmt.number(r.batchSize)}</td>
                    <td class="num">{fmt.metric(r.bestValidNdcg10)}</td>
                    <td class="num">{fmt.bytes(r.peakBytes)}</td>
                    <td class="num">{fmt.duration(r.durationSeconds)}</td>
                    <td>{fmt.time(r.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </form>
        )}
      <section id="sweeps">
        <h2>Sweeps</h2>
        {props.sweeps.length
          ? (
            <table class="sweeps">
              <thead>
                <tr>
                  <th>sweep</th>
                  <th>status</th>
                  <th>axes</th>
                  <th class="num">trials</th>
                  <th class="num">memory budget</th>
                  <th>started</th>
                </tr>
              </thead>
              <tbody>
                {props.sweeps.map((s) => (
                  <tr>
                    <td>
                      <a href={`/sweeps/${encodeURIComponent(s.id)}`}>{s.name}</a>
                      <div class="sub">{s.id}</div>
                    </td>
                    <td>
                      <Badge status={s.status} />
                    </td>
                    <td>{Object.keys(s.grid).join(" × ") || fmt.DASH}</td>
                    <td class="num">{s.counts.finished} / {trialCount(s)}</td>
                    <td class="num">{fmt.bytes(s.budgetBytes)}</td>
                    <td>{fmt.time(s.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
          : (
            <p class="empty-state">
              No sweeps yet: <code>deno task sweep</code> starts one.
            </p>
          )}
      </section>
    </Layout>
  );
}

/** A chart that the client script draws; `series` name run ids and metric keys. */
function Chart(
  props: {
    title: string;
    x: "step" | "epoch";
    unit?: "bytes";
    series: { run: string; key: string; label: string }[];
  },
) {
  const spec = JSON.stringify({ x: props.x, unit: props.unit ?? "", series: props.series });
  return (
    <figure class="chart" data-chart={spec} data-points="0">
      <figcaption>{props.title}</figcaption>
      <div class="plot"></div>
      <p class="chart-note">no points yet</p>
    </figure>
  );
}

function ChartsNote() {
  return (
    <noscript>
      <p class="note">Charts need JavaScript; the tables below hold the same numbers.</p>
    </noscript>
  );
}

const FAMILY_NAMES: Record<string, string> = {
  hr: "HR",
  ndcg: "NDCG",
  mrr: "MRR",
  coverage: "Coverage",
};

function KeyValueTable(props: { entries: Record<string, unknown> }) {
  return (
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
  );
}

/** A run's config without the objective settings its objective does not read. */
function ConfigTable(props: { run: RunView }) {
  const unused = unusedObjectiveKeys(props.run.config);
  const entries = Object.entries(props.run.config).filter(([k]) => !unused.has(k));
  return (
    <>
      <KeyValueTable entries={Object.fromEntries(entries)} />
      {unused.size
        ? (
          <p class="note">
            Not read by {props.run.loss} ({props.run.objective}): {[...unused].join(", ")}.
          </p>
        )
        : null}
    </>
  );
}

function trialCount(s: SweepSummary): number {
  return Object.values(s.counts).reduce((a, b) => a + b, 0);
}

/** Where a lost run stopped, and how to carry on from there. */
function LostPanel(props: { run: RunView; epochs: EpochRow[]; runsDir: string }) {
  const { run, epochs } = props;
  const last = epochs.at(-1);
  return (
    <section class="lost">
      <p>
        Its training process stopped answering: no heartbeat since{" "}
        {fmt.time(run.heartbeatAt ?? run.createdAt)}.
      </p>
      <p>
        Last good checkpoint: {run.checkpoint
          ? (
            <>
              <code>{run.checkpoint}</code>
              {last ? ` (after epoch ${last.epoch}, step ${last.step})` : ""}
            </>
          )
          : "none (it stopped before its first epoch ended)"}
      </p>
      {run.checkpoint
        ? (
          <p>
            Resume it with <code class="command">{resumeCommand(run.id, props.runsDir)}</code>
          </p>
        )
        : null}
    </section>
  );
}

/** The shell command that continues a run; the runs folder is quoted when it needs to be. */
export function resumeCommand(id: string, runsDir: string): string {
  const quoted = /^[A-Za-z0-9_./-]+$/.test(runsDir)
    ? runsDir
    : `'${runsDir.replaceAll("'", `'\\''`)}'`;
  return `deno task train --resume ${id} --out ${quoted}`;
}

function FinalTable(props: { final: FinalMetrics }) {
  const { valid, test, mostpopTest, bestEpoch } = props.final;
  const splits: [string, Record<string, number>][] = [
    [`valid (epoch ${bestEpoch ?? fmt.DASH})`, valid],
    ["test", test],
    ["MostPop test", mostpopTest],
  ];
  const present = splits.filter(([, t]) => Object.keys(t).length);
  const { families, ks } = metricGrid(valid, test, mostpopTest);
  if (!present.length || !ks.length) return <p class="empty-state">No ranking metrics yet.</p>;
  return (
    <table class="final">
      <thead>
        <tr>
          <th>split</th>
          <th>metric</th>
          {ks.map((k) => <th class="num">@{k}</th>)}
        </tr>
      </thead>
      <tbody>
        {present.flatMap(([split, t]) =>
          families.map((f, i) => (
            <tr class={i === 0 ? "group" : undefined}>
              <td>{i === 0 ? split : ""}</td>
              <td>{FAMILY_NAMES[f] ?? f}</td>
              {ks.map((k) => <td class="num">{fmt.metric(t[`${f}@${k}`])}</td>)}
            </tr>
          ))
        )}
      </tbody>
    </table>
  );
}

export function RunPage(
  props: {
    run: RunView;
    epochs: EpochRow[];
    final: FinalMetrics;
    sweep: SweepRecord | null;
    runsDir: string;
  },
) {
  const { run, epochs } = props;
  const live = run.status === "running";
  const one = (key: string, label: string) => ({ run: run.id, key, label });
  const lastStep = epochs.at(-1)?.step;
  return (
    <Layout title={run.name} charts live={live ? run.id : undefined}>
      <h1>
        {run.name} <Badge status={run.status} />
      </h1>
      <p class="meta">
        <code>{run.id}</code> · {run.dataset} · started {fmt.time(run.createdAt)}
        {run.finishedAt ? ` · ended ${fmt.time(run.finishedAt)}` : ""}
        {props.sweep
          ? (
            <>
              {" · sweep "}
              <a href={`/sweeps/${encodeURIComponent(props.sweep.id)}`}>{props.sweep.name}</a>
            </>
          )
          : null}
      </p>
      {run.error ? <p class="error">{run.error}</p> : null}
      {run.status === "lost"
        ? <LostPanel run={run} epochs={epochs} runsDir={props.runsDir} />
        : null}
      <dl class="cards">
        <div>
          <dt>best valid NDCG@10</dt>
          <dd data-field="bestValidNdcg10">{fmt.metric(run.bestValidNdcg10)}</dd>
        </div>
        <div>
          <dt>peak GPU memory</dt>
          <dd data-field="peakBytes">{fmt.bytes(run.peakBytes)}</dd>
        </div>
        <div>
          <dt>duration</dt>
          <dd>{fmt.duration(run.durationSeconds)}</dd>
        </div>
        <div>
          <dt>epochs</dt>
          <dd>
            <span data-field="epochs">{epochs.at(-1)?.epoch ?? 0}</span> /{" "}
            {fmt.value(run.config.epochs)}
          </dd>
        </div>
        <div>
          <dt>steps</dt>
          <dd data-field="steps">{fmt.number(lastStep)}</dd>
        </div>
      </dl>
      <h2>Curves</h2>
      <ChartsNote />
      <div class="charts">
        <Chart title="training loss per step" x="step" series={[one("train_loss_step", "loss")]} />
        <Chart title="training loss per epoch" x="epoch" series={[one("train_loss", "loss")]} />
        <Chart
          title="validation metrics per epoch"
          x="epoch"
          series={[
            one("valid_ndcg@10", "NDCG@10"),
            one("valid_hr@10", "HR@10"),
            one("valid_mrr@10", "MRR@10"),
          ]}
        />
        <Chart
          title="peak GPU memory per epoch"
          x="epoch"
          unit="bytes"
          series={[one("peak_bytes", "reserved peak")]}
        />
        <Chart title="seconds per epoch" x="epoch" series={[one("epoch_seconds", "seconds")]} />
      </div>
      <h2>Final metrics</h2>
      <FinalTable final={props.final} />
      <h2>Epochs</h2>
      {epochs.length
        ? (
          <table class="epochs">
            <thead>
              <tr>
                <th class="num">epoch</th>
                <th class="num">step</th>
                <th class="num">train loss</th>
                <th class="num">valid NDCG@10</th>
                <th class="num">valid HR@10</th>
                <th class="num">peak memory</th>
                <th class="num">seconds</th>
              </tr>
            </thead>
            <tbody>
              {epochs.map((e) => (
                <tr>
                  <td class="num">{e.epoch}</td>
                  <td class="num">{e.step}</td>
                  <td class="num">{fmt.number(e.trainLoss)}</td>
                  <td class="num">{fmt.metric(e.validNdcg10)}</td>
                  <td class="num">{fmt.metric(e.validHr10)}</td>
                  <td class="num">{fmt.bytes(e.peakBytes)}</td>
                  <td class="num">{fmt.number(e.seconds, 1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
        : <p class="empty-state">No epoch finished yet.</p>}
      <h2>Config</h2>
      <ConfigTable run={run} />
      <p class="api">
        JSON: <a href={`/api/runs/${encodeURIComponent(run.id)}`}>run</a> ·{" "}
        <a href={`/api/runs/${encodeURIComponent(run.id)}/metrics`}>metrics</a>
      </p>
    </Layout>
  );
}

/** Blue scale over the sweep's NDCG@10 range; darker is better. */
function heat(v: number, range: { min: number; max: number }): string {
  const t = range.max > range.min ? (v - range.min) / (range.max - range.min) : 1;
  const light = Math.round(94 - t * 56);
  return `background:hsl(212,62%,${light}%);color:${light < 60 ? "#fff" : "#10213a"}`;
}

function Cell(props: { cell: HeatCell; range: SweepLayout["range"] }) {
  const { cell, range } = props;
  const t = cell.trial;
  if (!t) return <td class="cell missing">{fmt.DASH}</td>;
  const classes = ["cell", `trial-${t.status}`];
  if (cell.exceedsBudget) classes.push("exceeds");
  if (cell.best) classes.push("best");
  const style = cell.ndcg10 !== null && range && !cell.exceedsBudget
    ? heat(cell.ndcg10, range)
    : undefined;
  const label = cell.exceedsBudget
    ? "exceeds budget"
    : t.status === "finished"
    ? fmt.metric(cell.ndcg10)
    : fmt.statusText(t.status);
  return (
    <td class={classes.join(" ")} style={style} title={t.error ?? undefined}>
      {t.runId
        ? <a class="value" href={`/runs/${encodeURIComponent(t.runId)}`}>{label}</a>
        : <span class="value">{label}</span>}
      <span class="mem">
        {fmt.bytes(cell.memoryBytes)}
        {trialPeak(t) === null && t.estimateBytes !== null ? " est." : ""}
      </span>
      {cell.best ? <span class="star">best under budget</span> : null}
    </td>
  );
}

function params(p: Record<string, unknown>): string {
  return Object.entries(p).map(([k, v]) => `${k}=${show(v)}`).join(", ");
}

export function SweepPage(props: { view: SweepView; layout: SweepLayout }) {
  const { sweep, trials } = props.view;
  const { layout } = props;
  const { best } = layout;
  const finished = trials.filter((t) => t.status === "finished").length;
  return (
    <Layout title={sweep.name} refresh={sweep.status === "running" ? 10 : undefined}>
      <h1>
        {sweep.name} <Badge status={sweep.status} />
      </h1>
      <p class="meta">
        <code>{sweep.id}</code> · started {fmt.time(sweep.createdAt)} · {finished} of{" "}
        {trials.length} trials finished · memory budget {fmt.bytes(sweep.budgetBytes)}
      </p>
      <p class="best-line">
        {best
          ? (
            <>
              Best under budget: <strong>{params(best.params)}</strong>, NDCG@10{" "}
              {fmt.metric(best.validNdcg10)}, {fmt.bytes(trialPeak(best) ?? best.estimateBytes)}
              {best.runId
                ? (
                  <>
                    {" · "}
                    <a href={`/runs/${encodeURIComponent(best.runId)}`}>run</a>
                  </>
                )
                : null}
            </>
          )
          : "No finished trial under the budget yet."}
      </p>
      <h2>Best validation NDCG@10</h2>
      <p class="legend">
        <span class="swatch low"></span> lower <span class="swatch high"></span> higher{" "}
        <span class="swatch exceeds"></span> exceeds the memory budget{" "}
        <span class="swatch best"></span>{" "}
        best under budget. Each cell: NDCG@10, then peak memory (or the estimate, "est.", before it
        runs).
      </p>
      {layout.heatmaps.map((h) => (
        <table class="heatmap">
          {h.title ? <caption>{h.title}</caption> : null}
          <thead>
            <tr>
              <th class="corner">
                {h.y.axis ?? ""}
                {h.y.axis ? " ↓ " : ""}
                {h.x.axis} →
              </th>
              {h.x.values.map((v) => <th class="num">{show(v)}</th>)}
            </tr>
          </thead>
          <tbody>
            {h.rows.map((row, i) => (
              <tr>
                <th class="num">{h.y.axis ? show(h.y.values[i]) : ""}</th>
                {row.map((cell) => <Cell cell={cell} range={layout.range} />)}
              </tr>
            ))}
          </tbody>
        </table>
      ))}
      <h2>Trials</h2>
      <table class="trials">
        <thead>
          <tr>
            <th>trial</th>
            <th>status</th>
            <th class="num">NDCG@10</th>
            <th class="num">peak memory</th>
            <th class="num">estimate</th>
            <th>run</th>
            <th>error</th>
          </tr>
        </thead>
        <tbody>
          {trials.map((t) => (
            <tr class={t === best ? "best" : undefined}>
              <td>{params(t.params)}</td>
              <td>
                <Badge status={t.status} />
              </td>
              <td class="num">{fmt.metric(t.validNdcg10)}</td>
              <td class="num">{fmt.bytes(trialPeak(t))}</td>
              <td class="num">{fmt.bytes(t.estimateBytes)}</td>
              <td>
                {t.runId
                  ? <a href={`/runs/${encodeURIComponent(t.runId)}`}>{t.run?.name ?? t.runId}</a>
                  : fmt.DASH}
              </td>
              <td class="error-cell">{t.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {Object.keys(sweep.args).length
        ? (
          <>
            <h2>Arguments</h2>
            <KeyValueTable entries={sweep.args} />
          </>
        )
        : null}
      <p class="api">
        JSON: <a href={`/api/sweeps/${encodeURIComponent(sweep.id)}`}>sweep</a>
      </p>
    </Layout>
  );
}

export function ComparePage(props: { runs: RunView[]; finals: FinalMetrics[] }) {
  const { runs, finals } = props;
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))];
  const differing = keys.filter((k) =>
    new Set(runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1
  );
  const overlay = (key: string) => runs.map((r) => ({ run: r.id, key, label: r.name }));
  const row = (label: string, cell: (r: RunView, i: number) => Child, num = true) => (
    <tr>
      <th>{label}</th>
      {runs.map((r, i) => <td class={num ? "num" : undefined}>{cell(r, i)}</td>)}
    </tr>
  );
  return (
    <Layout title={`compare ${runs.length} runs`} charts>
      <h1>Compare {runs.length} runs</h1>
      <table class="compare">
        <thead>
          <tr>
            <th></th>
            {runs.map((r) => (
              <th>
                <a href={`/runs/${encodeURIComponent(r.id)}`}>{r.name}</a>
                <div class="sub">{r.id}</div>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {row("status", (r) => <Badge status={r.status} />, false)}
          {row("dataset", (r) => r.dataset, false)}
          {row("loss", (r) => r.loss ?? fmt.DASH, false)}
          {row("negatives", (r) => r.objective ?? fmt.DASH)}
          {row("batch", (r) => fmt.number(r.batchSize))}
          {row("best valid NDCG@10", (r) => fmt.metric(r.bestValidNdcg10))}
          {row("test NDCG@10", (_, i) => fmt.metric(finals[i].test["ndcg@10"]))}
          {row("test HR@10", (_, i) => fmt.metric(finals[i].test["hr@10"]))}
          {row("peak memory", (r) => fmt.bytes(r.peakBytes))}
          {row("duration", (r) => fmt.duration(r.durationSeconds))}
        </tbody>
      </table>
      <h2>Config differences</h2>
      {differing.length
        ? (
          <table class="config">
            <tbody>
              {differing.map((k) => row(k, (r) => fmt.configValue(k, r.config[k]), false))}
            </tbody>
          </table>
        )
        : <p class="empty-state">The runs share one configuration.</p>}
      <h2>Curves</h2>
      <ChartsNote />
      <div class="charts">
        <Chart title="training loss per epoch" x="epoch" series={overlay("train_loss")} />
        <Chart title="validation NDCG@10 per epoch" x="epoch" series={overlay("valid_ndcg@10")} />
        <Chart title="training loss per step" x="step" series={overlay("train_loss_step")} />
        <Chart
          title="peak GPU memory per epoch"
          x="epoch"
          unit="bytes"
          series={overlay("peak_bytes")}
        />
      </div>
    </Layout>
  );
}

export function ErrorPage(props: { title: string; message: string }) {
  return (
    <Layout title={props.title}>
      <h1>{props.title}</h1>
      <p>{props.message}</p>
      <p>
        <a href="/">back to the runs</a>
      </p>
    </Layout>
  );
}
