// deno-lint-ignore-file jsx-key
/**
 * The runs list (filters, search, sort links, compare checkboxes) and the sweeps below it. While
 * any listed run trains, the script refreshes the `runs` region from this same URL.
 */
import type { SweepSummary } from "../../store/sweeps.ts";
import * as fmt from "../format.ts";
import { type RunQuery, SHOW, type SortColumn } from "../query.ts";
import { queryString } from "../query.ts";
import type { RunView } from "../runs.ts";
import { Badge, Layout, runHref, Scroll, sweepHref } from "./layout.tsx";

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
  ["created", "started (UTC)", false],
];

export const STATUSES = ["running", "lost", "finished", "failed", "stopped"];

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

function Select(
  props: { name: string; label: string; value: string; options: string[]; all?: string },
) {
  return (
    <label>
      {props.label}
      <select name={props.name}>
        {props.all === undefined ? null : <option value="">{props.all}</option>}
        {props.options.map((o) => <option value={o} selected={o === props.value}>{o}</option>)}
      </select>
    </label>
  );
}

export interface RunsPageProps {
  runs: RunView[];
  total: number;
  datasets: string[];
  losses: string[];
  tags: string[];
  sweeps: SweepSummary[];
  q: RunQuery;
  runsDir: string;
  /** The run just deleted, to say so. */
  deleted: string | null;
}

export function RunsPage(props: RunsPageProps) {
  const { q } = props;
  const live = props.runs.filter((r) => r.status === "running").length;
  return (
    <Layout title="runs" script>
      <h1>Runs</h1>
      {props.deleted ? <p class="flash">Deleted run {props.deleted} and its files.</p> : null}
      <form class="filters" method="get" action="/">
        <Select name="status" label="status" value={q.status} options={STATUSES} all="all" />
        <Select
          name="dataset"
          label="dataset"
          value={q.dataset}
          options={props.datasets}
          all="all"
        />
        <Select name="loss" label="loss" value={q.loss} options={props.losses} all="all" />
        <Select name="tag" label="tag" value={q.tag} options={props.tags} all="any" />
        <Select name="show" label="show" value={q.show} options={[...SHOW]} />
        <label class="search">
          search
          <input
            type="search"
            name="q"
            value={q.q}
            placeholder="text, or lr=0.001, negatives>100"
          />
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
          <form method="get" action="/compare" data-region="runs" data-live-runs={String(live)}>
            <p class="count">
              {props.runs.length} of {props.total} runs{" "}
              <button type="submit">compare selected (2–5)</button>
              {live
                ? (
                  <span class="hint">
                    refreshes while {live === 1 ? "1 run trains" : `${live} runs train`}
                  </span>
                )
                : null}
            </p>
            <Scroll>
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
                  {props.runs.map((r) => <RunRow run={r} />)}
                </tbody>
              </table>
            </Scroll>
          </form>
        )}
      <section id="sweeps">
        <h2>Sweeps</h2>
        {props.sweeps.length ? <SweepsTable sweeps={props.sweeps} /> : (
          <p class="empty-state">
            No sweeps yet: <code>deno task sweep</code> starts one.
          </p>
        )}
      </section>
    </Layout>
  );
}

function RunRow(props: { run: RunView }) {
  const r = props.run;
  return (
    <tr class={r.archivedAt ? "archived" : undefined}>
      <td>
        <input type="checkbox" name="ids" value={r.id} aria-label={`compare ${r.id}`} />
      </td>
      <td class="name">
        <a href={runHref(r.id)}>{r.name}</a>
        <div class="sub">{r.id}</div>
        {r.tags.length
          ? (
            <div class="chips">
              {r.tags.map((t) => <span class="chip">{t}</span>)}
            </div>
          )
          : null}
      </td>
      <td>
        <Badge status={r.status} />
      </td>
      <td class="nowrap">{r.dataset}</td>
      <td class="nowrap">{r.loss ?? fmt.DASH}</td>
      <td class="num">{r.objective ?? fmt.DASH}</td>
      <td class="num">{fmt.number(r.batchSize)}</td>
      <td class="num">{fmt.metric(r.bestValidNdcg10)}</td>
      <td class="num">{fmt.bytes(r.peakBytes)}</td>
      <td class="num" data-since={r.status === "running" ? r.createdAt : undefined}>
        {fmt.duration(r.durationSeconds)}
      </td>
      <td class="nowrap">{fmt.shortTime(r.createdAt)}</td>
    </tr>
  );
}

function trialCount(s: SweepSummary): number {
  return Object.values(s.counts).reduce((a, b) => a + b, 0);
}

function SweepsTable(props: { sweeps: SweepSummary[] }) {
  return (
    <Scroll>
      <table class="sweeps">
        <thead>
          <tr>
            <th>sweep</th>
            <th>status</th>
            <th>axes</th>
            <th class="num">trials</th>
            <th class="num">memory budget</th>
            <th>started (UTC)</th>
          </tr>
        </thead>
        <tbody>
          {props.sweeps.map((s) => (
            <tr>
              <td class="name">
                <a href={sweepHref(s.id)}>{s.name}</a>
                <div class="sub">{s.id}</div>
              </td>
              <td>
                <Badge status={s.status} />
              </td>
              <td>{Object.keys(s.grid).join(" × ") || fmt.DASH}</td>
              <td class="num">{s.counts.finished} / {trialCount(s)}</td>
              <td class="num">{fmt.bytes(s.budgetBytes)}</td>
              <td class="nowrap">{fmt.shortTime(s.createdAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}
