// deno-lint-ignore-file jsx-key
/**
 * A sweep's page: the best trial under the budget, NDCG@10 heatmaps on a numeric colour scale,
 * parallel coordinates, and every trial with the CLI's columns, downloadable as the CLI's CSV.
 */
import type { SweepView, TrialView } from "../../store/sweeps.ts";
import { sortTrials } from "../../sweep/report.ts";
import * as fmt from "../format.ts";
import {
  type HeatCell,
  scaleColor,
  scaleGradient,
  scalePosition,
  scaleText,
  show,
  type SweepLayout,
  trialPeak,
} from "../heatmap.ts";
import type { ParallelLayout } from "../parcoords.ts";
import { Badge, KeyValueTable, Layout, runHref, Scroll, sweepHref } from "./layout.tsx";

function params(p: Record<string, unknown>): string {
  return Object.entries(p).map(([k, v]) => `${k}=${show(v)}`).join(", ");
}

function Cell(props: { cell: HeatCell; range: SweepLayout["range"] }) {
  const { cell, range } = props;
  const t = cell.trial;
  if (!t) return <td class="cell missing">{fmt.DASH}</td>;
  const classes = ["cell", `trial-${t.status}`];
  if (cell.exceedsBudget) classes.push("exceeds");
  if (cell.best) classes.push("best");
  const pos = cell.ndcg10 !== null && range && !cell.exceedsBudget
    ? scalePosition(cell.ndcg10, range)
    : null;
  const style = pos === null ? undefined : `background:${scaleColor(pos)};color:${scaleText(pos)}`;
  const label = cell.exceedsBudget
    ? "exceeds budget"
    : t.status === "finished"
    ? fmt.metric(cell.ndcg10)
    : fmt.statusText(t.status);
  return (
    <td class={classes.join(" ")} style={style} title={t.error ?? undefined}>
      {t.runId
        ? <a class="value" href={runHref(t.runId)}>{label}</a>
        : <span class="value">{label}</span>}
      <span class="mem">
        {fmt.bytes(cell.memoryBytes)}
        {trialPeak(t) === null && t.estimateBytes !== null ? " est." : ""}
      </span>
      {cell.best ? <span class="star">best under budget</span> : null}
    </td>
  );
}

/** The numeric colour scale: its gradient with the lowest, middle and highest NDCG@10. */
function ScaleLegend(props: { range: SweepLayout["range"] }) {
  const { range } = props;
  if (!range) return null;
  const mid = (range.min + range.max) / 2;
  return (
    <div class="scale" aria-label="colour scale of validation NDCG@10">
      <span class="bar" style={`background:${scaleGradient()}`}></span>
      <span class="ticks">
        <span>{fmt.metric(range.min)}</span>
        <span>{fmt.metric(mid)}</span>
        <span>{fmt.metric(range.max)}</span>
      </span>
    </div>
  );
}

function Parallel(props: { layout: ParallelLayout }) {
  const { width, height, top, bottom, axes, lines, budget } = props.layout;
  return (
    <Scroll>
      <svg
        class="parallel"
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label="parallel coordinates of the trials"
      >
        {lines.map((l) => (
          <polyline
            class={l.t === null ? "line unscored" : "line"}
            points={l.points}
            stroke={l.t === null ? undefined : scaleColor(l.t)}
          >
            <title>{l.title}</title>
          </polyline>
        ))}
        {axes.map((a) => (
          <g class="axis">
            <line x1={a.x} x2={a.x} y1={top} y2={bottom} />
            <text class="axis-title" x={a.x} y={16}>{a.title}</text>
            {a.ticks.map((t) => <text class="tick" x={a.x - 6} y={t.y + 4}>{t.label}</text>)}
          </g>
        ))}
        {budget
          ? (
            <g class="budget">
              <line x1={budget.x - 10} x2={budget.x + 10} y1={budget.y} y2={budget.y} />
              <text x={budget.x + 12} y={budget.y + 4}>budget</text>
            </g>
          )
          : null}
      </svg>
    </Scroll>
  );
}

/** Every trial, one column per grid axis, then the CLI's result columns; best first. */
function TrialsTable(props: { view: SweepView; best: TrialView | null }) {
  const axes = Object.keys(props.view.sweep.grid);
  // Sweeps run on a queue say which worker ran each trial; local ones have no such column.
  const workers = props.view.trials.some((t) => t.worker !== null);
  return (
    <Scroll>
      <table class="trials">
        <thead>
          <tr>
            {axes.map((a) => <th class="num">{a}</th>)}
            <th>status</th>
            <th class="num">valid NDCG@10</th>
            <th class="num">HR@10</th>
            <th class="num">Coverage@10</th>
            <th class="num">s/epoch</th>
            <th class="num">peak memory</th>
            <th class="num">estimate</th>
            <th>run</th>
            {workers && <th>worker</th>}
            <th>error</th>
          </tr>
        </thead>
        <tbody>
          {sortTrials(props.view.trials).map((t) => (
            <tr class={t === props.best ? "best" : undefined}>
              {axes.map((a) => <td class="num">{fmt.value(t.params[a] ?? null)}</td>)}
              <td>
                <Badge status={t.status} />
              </td>
              <td class="num">{fmt.metric(t.validNdcg10)}</td>
              <td class="num">{fmt.metric(t.validHr10)}</td>
              <td class="num">{fmt.metric(t.validCoverage10)}</td>
              <td class="num">{fmt.number(t.secondsPerEpoch, 1)}</td>
              <td class="num">{fmt.bytes(trialPeak(t))}</td>
              <td class="num">{fmt.bytes(t.estimateBytes)}</td>
              <td class="nowrap">
                {/* The id, not the name: a trial's run is named after the parameters beside it. */}
                {t.runId ? <a class="mono" href={runHref(t.runId)}>{t.runId}</a> : fmt.DASH}
              </td>
              {workers && <td class="nowrap mono">{t.worker ?? fmt.DASH}</td>}
              <td class="error-cell">{t.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}

export function SweepPage(
  props: { view: SweepView; layout: SweepLayout; parallel: ParallelLayout | null },
) {
  const { sweep, trials } = props.view;
  const { layout } = props;
  const { best } = layout;
  const finished = trials.filter((t) => t.status === "finished").length;
  const base = sweepHref(sweep.id);
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
                    <a href={runHref(best.runId)}>run</a>
                  </>
                )
                : null}
            </>
          )
          : "No finished trial under the budget yet."}
      </p>
      <h2>Best validation NDCG@10</h2>
      <p class="legend">
        Each cell: NDCG@10, then peak memory (or the estimate, "est.", before it runs).{" "}
        <span class="swatch exceeds"></span> exceeds the memory budget{" "}
        <span class="swatch best"></span> best under budget
      </p>
      <ScaleLegend range={layout.range} />
      {layout.heatmaps.map((h) => (
        <Scroll>
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
        </Scroll>
      ))}
      {props.parallel
        ? (
          <>
            <h2>Parallel coordinates</h2>
            <p class="legend">
              One line per trial through its settings, peak memory and NDCG@10, coloured on the
              scale above; grey lines have no score (failed, over budget, not run yet).
            </p>
            <Parallel layout={props.parallel} />
          </>
        )
        : null}
      <h2>Trials</h2>
      <p class="api">
        <a href={`${base}/trials.csv`} download>download CSV</a> (the columns of{" "}
        <code>deno task sweep --export</code>)
      </p>
      <TrialsTable view={props.view} best={best} />
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
