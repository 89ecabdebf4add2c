// deno-lint-ignore-file jsx-key
/**
 * A pruning evaluation's page: the dense reference, one heatmap of pattern × criterion per
 * mitigation (activation) or addition (weight) on the sweep heatmaps' colour scale, and every
 * row with all its metrics, refusals included.
 */
import type { PruneEvaluation, PruneResult } from "../../store/prune.ts";
import * as fmt from "../format.ts";
import { scaleColor, scaleGradient, scaleText } from "../heatmap.ts";
import type { PruneCell, PruneHeatmap, PruneLayout } from "../prune.ts";
import { Layout, runHref, Scroll } from "./layout.tsx";

function Cell(props: { cell: PruneCell }) {
  const { cell } = props;
  const r = cell.result;
  if (!r) return <td class="cell missing">{fmt.DASH}</td>;
  if (r.refused) return <td class="cell exceeds" title={r.refused}>refused</td>;
  const style = cell.t === null
    ? undefined
    : `background:${scaleColor(cell.t)};color:${scaleText(cell.t)}`;
  return (
    <td class={cell.best ? "cell best" : "cell"} style={style}>
      <span class="value">{fmt.metric(cell.value)}</span>
      {r.bits !== null ? <span class="mem">{r.bits.toFixed(3)} bits/el</span> : null}
      {cell.atDense ? <span class="star">as good as dense</span> : null}
    </td>
  );
}

function Heatmap(props: { h: PruneHeatmap; headline: string }) {
  const { h } = props;
  return (
    <Scroll>
      <table class="heatmap">
        <caption>
          {h.kind} pruning · {h.kind === "weight" ? "additions" : "mitigation"} {h.mitigation}
        </caption>
        <thead>
          <tr>
            <th class="corner">pattern ↓ criterion →</th>
            {h.criteria.map((c) => <th class="num">{c}</th>)}
          </tr>
        </thead>
        <tbody>
          {h.rows.map((row, i) => (
            <tr>
              <th class="num">{h.patterns[i]}</th>
              {row.map((cell) => <Cell cell={cell} />)}
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}

function Rows(props: { results: readonly PruneResult[]; dense: Record<string, number> }) {
  const keys = Object.keys(props.dense);
  return (
    <Scroll>
      <table class="trials">
        <thead>
          <tr>
            <th>kind</th>
            <th>pattern</th>
            <th>criterion</th>
            <th>mitigation</th>
            {keys.map((k) => <th class="num">{k}</th>)}
            <th class="num">bits/el</th>
            <th>refused</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <td>dense</td>
            <td>{fmt.DASH}</td>
            <td>{fmt.DASH}</td>
            <td>{fmt.DASH}</td>
            {keys.map((k) => <td class="num">{fmt.metric(props.dense[k])}</td>)}
            <td class="num">32</td>
            <td></td>
          </tr>
          {props.results.map((r) => (
            <tr>
              <td>{r.kind}</td>
              <td>{r.pattern}</td>
              <td>{r.criterion}</td>
              <td>{r.mitigation}</td>
              {keys.map((k) => <td class="num">{fmt.metric(r.metrics?.[k] ?? null)}</td>)}
              <td class="num">{r.bits === null ? "" : r.bits.toFixed(3)}</td>
              <td>{r.refused ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}

export function PrunePage(
  props: { evaluation: PruneEvaluation; results: readonly PruneResult[]; layout: PruneLayout },
) {
  const { evaluation: ev, layout } = props;
  const direction = ev.higherIsBetter ? "higher is better" : "lower is better";
  return (
    <Layout title={`pruning ${ev.model}`}>
      <h1>Pruning · {ev.model}</h1>
      <p class="meta">
        <code>{ev.id}</code> · {ev.backbone} · {fmt.time(ev.createdAt)}
        {ev.runId
          ? (
            <>
              {" · run "}
              <a href={runHref(ev.runId)}>{ev.runId}</a>
            </>
          )
          : null}
      </p>
      <p>{ev.label}</p>
      <p class="dense-reference">
        dense model: {layout.headline} <strong>{fmt.metric(layout.dense)}</strong>{" "}
        ({direction}; cells coloured from worst to best)
      </p>
      {layout.range
        ? (
          <div class="scale" aria-label={`colour scale of ${layout.headline}`}>
            <span class="bar" style={`background:${scaleGradient()}`}></span>
            <span class="ticks">
              <span>worst</span>
              <span></span>
              <span>best</span>
            </span>
          </div>
        )
        : null}
      {layout.heatmaps.map((h) => <Heatmap h={h} headline={layout.headline} />)}
      <h2>Every combination</h2>
      <Rows results={props.results} dense={ev.dense} />
    </Layout>
  );
}

export function pruneHref(id: string): string {
  return `/prune/${encodeURIComponent(id)}`;
}
