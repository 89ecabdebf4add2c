// deno-lint-ignore-file jsx-key
/** Two to five runs side by side: headline figures, config differences, overlaid curves. */
import type { Child } from "hono/jsx";
import * as fmt from "../format.ts";
import type { FinalMetrics } from "../metrics.ts";
import { type RunView, unusedObjectiveKeys } from "../runs.ts";
import {
  Badge,
  Chart,
  ChartControls,
  chartSeries,
  Layout,
  runHref,
  Scroll,
  VersusMostPop,
} from "./layout.tsx";

export function ComparePage(props: { runs: RunView[]; finals: FinalMetrics[] }) {
  const { runs, finals } = props;
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))];
  // A setting a run's objective does not read (a full softmax's negatives) compares as absent.
  const unused = runs.map((r) => unusedObjectiveKeys(r.config));
  const shown = (k: string, i: number) => unused[i].has(k) ? null : runs[i].config[k] ?? null;
  const differing = keys.filter((k) =>
    new Set(runs.map((_, i) => JSON.stringify(shown(k, i)))).size > 1
  );
  const overlay = (key: string) => runs.map((r) => chartSeries(r, key, r.name));
  const row = (label: string, cell: (r: RunView, i: number) => Child, num = true) => (
    <tr>
      <th>{label}</th>
      {runs.map((r, i) => <td class={num ? "num" : undefined}>{cell(r, i)}</td>)}
    </tr>
  );
  return (
    <Layout title={`compare ${runs.length} runs`} charts>
      <h1>Compare {runs.length} runs</h1>
      <Scroll>
        <table class="compare">
          <thead>
            <tr>
              <th></th>
              {runs.map((r) => (
                <th class="name">
                  <a href={runHref(r.id)}>{r.name}</a>
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
            {row("test NDCG@10 vs MostPop", (_, i) => <VersusMostPop final={finals[i]} />)}
            {row("test HR@10", (_, i) => fmt.metric(finals[i].test["hr@10"]))}
            {row("peak memory", (r) => fmt.bytes(r.peakBytes))}
            {row("duration", (r) => fmt.duration(r.durationSeconds))}
          </tbody>
        </table>
      </Scroll>
      <h2>Config differences</h2>
      {differing.length
        ? (
          <Scroll>
            <table class="config">
              <tbody>
                {differing.map((k) =>
                  row(
                    k,
                    (r, i) =>
                      unused[i].has(k)
                        ? <span class="hint">not read by {r.loss}</span>
                        : fmt.configValue(k, r.config[k]),
                    false,
                  )
                )}
              </tbody>
            </table>
          </Scroll>
        )
        : <p class="empty-state">The runs share one configuration.</p>}
      <h2>Curves</h2>
      <ChartControls />
      <div class="charts">
        <Chart title="training loss per step" unit="loss" series={overlay("train_loss_step")} />
        <Chart title="training loss per epoch" unit="loss" series={overlay("train_loss")} />
        <Chart
          title="validation ranking"
          unit="metric"
          picker
          series={overlay("valid_{metric}")}
        />
        <Chart title="peak GPU memory" unit="bytes" series={overlay("peak_bytes")} />
      </div>
    </Layout>
  );
}
