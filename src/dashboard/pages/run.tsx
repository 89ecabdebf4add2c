// deno-lint-ignore-file jsx-key
/**
 * A run's page: headline figures, curves, final metrics, epochs, notes and config. While the run
 * trains, the script refreshes the `data-region` blocks from this same page as epochs arrive.
 */
import type { EmbeddingKind } from "../../store/embeddings.ts";
import type { SweepRecord } from "../../store/sweeps.ts";
import * as fmt from "../format.ts";
import { type EpochRow, type FinalMetrics, metricGrid } from "../metrics.ts";
import { type RunView, unusedObjectiveKeys } from "../runs.ts";
import { embeddingsHref } from "./embeddings.tsx";
import {
  Badge,
  Chart,
  ChartControls,
  chartSeries,
  CsrfField,
  FAMILY_NAMES,
  KeyValueTable,
  Layout,
  runHref,
  Scroll,
  sweepHref,
  VersusMostPop,
} from "./layout.tsx";

export interface RunPageProps {
  run: RunView;
  epochs: EpochRow[];
  final: FinalMetrics;
  sweep: SweepRecord | null;
  runsDir: string;
  /** Whether `<runs>/<id>/last.safetensors` exists where this dashboard reads the runs. */
  checkpointOnDisk: boolean;
  /** The page of the run's newest pruning evaluation (deno task prune), if any. */
  pruneHref?: string | null;
  csrf: string;
  /** The kinds of embeddings its embeddings page maps (none: no link). */
  embeddings?: EmbeddingKind[];
}

export function RunPage(props: RunPageProps) {
  const { run, epochs } = props;
  const live = run.status === "running";
  const one = (key: string, label: string) => chartSeries(run, key, label);
  // A language-model run (lm:train) records validation loss and tokens/s, not ranking metrics.
  const lm = run.config.task === "lm";
  return (
    <Layout title={run.name} charts live={live ? run.id : undefined}>
      <div data-region="summary">
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
                <a href={sweepHref(props.sweep.id)}>{props.sweep.name}</a>
              </>
            )
            : null}
          {run.archivedAt ? ` · archived ${fmt.time(run.archivedAt)}` : ""}
          {props.pruneHref
            ? (
              <>
                {" · "}
                <a href={props.pruneHref}>pruning heatmaps</a>
              </>
            )
            : null}
        </p>
        <Tags tags={run.tags} />
        {run.note ? <p class="run-note">{run.note}</p> : null}
        {run.error ? <p class="error">{run.error}</p> : null}
        {run.status === "lost"
          ? (
            <LostPanel
              run={run}
              epochs={epochs}
              runsDir={props.runsDir}
              onDisk={props.checkpointOnDisk}
            />
          )
          : null}
        <dl class="cards">
          <div>
            <dt>best valid NDCG@10</dt>
            <dd data-field="bestValidNdcg10">{fmt.metric(run.bestValidNdcg10)}</dd>
          </div>
          <div>
            <dt>test NDCG@10 vs MostPop</dt>
            <dd data-field="versus">
              <VersusMostPop final={props.final} />
            </dd>
          </div>
          <div>
            <dt>peak GPU memory</dt>
            <dd data-field="peakBytes">{fmt.bytes(run.peakBytes)}</dd>
          </div>
          <div>
            <dt>duration</dt>
            <dd data-field="duration" data-since={live ? run.createdAt : undefined}>
              {fmt.duration(run.durationSeconds)}
            </dd>
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
            <dd data-field="steps">{fmt.number(epochs.at(-1)?.step)}</dd>
          </div>
        </dl>
      </div>
      {props.embeddings?.length
        ? (
          <p class="embeddings-link">
            Embeddings map: {props.embeddings.map((k, i) => (
              <>
                {i ? " · " : ""}
                <a href={embeddingsHref(run.id, k)}>{k}</a>
              </>
            ))}
          </p>
        )
        : null}
      <h2>Curves</h2>
      <ChartControls />
      <div class="charts">
        <Chart
          title={lm ? "loss" : "training loss"}
          unit="loss"
          series={[
            one("train_loss_step", "per step"),
            one("train_loss", "epoch mean"),
            ...(lm ? [one("valid_loss", "validation")] : []),
          ]}
        />
        {lm
          ? (
            <Chart
              title="training throughput"
              unit="tokens"
              series={[one("tokens_per_second", "tokens/s")]}
            />
          )
          : (
            <Chart
              title="validation ranking"
              unit="metric"
              picker
              series={[one("valid_{metric}", "validation")]}
            />
          )}
        <Chart title="peak GPU memory" unit="bytes" series={[one("peak_bytes", "reserved peak")]} />
        <Chart title="seconds per epoch" unit="seconds" series={[one("epoch_seconds", "epoch")]} />
      </div>
      <h2>Final metrics</h2>
      <div data-region="final">
        <FinalTable final={props.final} />
      </div>
      <h2>Epochs</h2>
      <div data-region="epochs">
        <EpochsTable epochs={epochs} />
      </div>
      <h2>Notes</h2>
      <NotesForm run={run} csrf={props.csrf} />
      <h2>Config</h2>
      <ConfigTable run={run} />
      <p class="api">
        JSON: <a href={`/api/runs/${encodeURIComponent(run.id)}`}>run</a> ·{" "}
        <a href={`/api/runs/${encodeURIComponent(run.id)}/metrics`}>metrics</a>
      </p>
    </Layout>
  );
}

export function Tags(props: { tags: string[] }) {
  if (!props.tags.length) return null;
  return (
    <ul class="tags">
      {props.tags.map((t) => (
        <li>
          <a href={`/?tag=${encodeURIComponent(t)}`}>{t}</a>
        </li>
      ))}
    </ul>
  );
}

/** Tags and a note (one form), archive or bring back, and the way to delete it. */
function NotesForm(props: { run: RunView; csrf: string }) {
  const { run } = props;
  const base = runHref(run.id);
  return (
    <div class="notes">
      <form method="post" action={`${base}/notes`} class="notes-form">
        <CsrfField token={props.csrf} />
        <label>
          <span>
            tags <span class="hint">(comma-separated)</span>
          </span>
          <input name="tags" value={run.tags.join(", ")} maxlength={500} />
        </label>
        <label>
          note
          <textarea name="note" rows={3} maxlength={5000}>{run.note}</textarea>
        </label>
        <button type="submit">save notes</button>
      </form>
      <div class="actions">
        <form method="post" action={`${base}/archive`}>
          <CsrfField token={props.csrf} />
          <input type="hidden" name="archived" value={run.archivedAt ? "0" : "1"} />
          <button type="submit" class="secondary">
            {run.archivedAt ? "unarchive" : "archive"}
          </button>
        </form>
        {run.status === "running"
          ? <span class="hint">A run in training cannot be deleted.</span>
          : <a class="danger" href={`${base}/delete`}>delete…</a>}
      </div>
    </div>
  );
}

/** Where a lost run stopped, and how to carry on from there. */
function LostPanel(props: { run: RunView; epochs: EpochRow[]; runsDir: string; onDisk: boolean }) {
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
              {props.onDisk ? "" : `; not found under ${props.runsDir}/${run.id}/`}
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
    <Scroll>
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
                <td>{Object.hasOwn(FAMILY_NAMES, f) ? FAMILY_NAMES[f] : f}</td>
                {ks.map((k) => <td class="num">{fmt.metric(t[`${f}@${k}`])}</td>)}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </Scroll>
  );
}

function EpochsTable(props: { epochs: EpochRow[] }) {
  if (!props.epochs.length) return <p class="empty-state">No epoch finished yet.</p>;
  return (
    <Scroll>
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
          {props.epochs.map((e) => (
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
    </Scroll>
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
