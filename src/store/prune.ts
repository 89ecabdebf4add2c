/**
 * Pruning evaluations in the run store (`deno task prune`, src/prune): two tables of their own,
 * created on first write, so that a store without them reads as "no evaluation":
 * - prune_evaluations: one per task invocation — the model it pruned (a run id of this store,
 *   or the file it read), the backbone, the headline metric the heatmap colours by and its
 *   direction, the dense reference of every metric;
 * - prune_results: a row per combination — kind (activation | weight), pattern, criterion,
 *   mitigation, its metrics (JSON), weight storage in bits per element, or why it was refused.
 */
import { DatabaseSync } from "node:sqlite";
import type { RunStore } from "./runs.ts";

const SCHEMA = `
create table if not exists prune_evaluations (
  id text primary key,
  model text not null,
  run_id text,
  backbone text not null,
  label text not null,
  headline text not null,
  higher_is_better integer not null,
  dense text not null,
  created_at text not null
);
create index if not exists prune_evaluations_run on prune_evaluations(run_id, created_at);
create table if not exists prune_results (
  evaluation_id text not null references prune_evaluations(id),
  seq integer not null,
  kind text not null,
  pattern text not null,
  criterion text not null,
  mitigation text not null,
  metrics text,
  bits real,
  refused text,
  primary key (evaluation_id, seq)
);
`;

export interface PruneEvaluation {
  id: string;
  /** What was pruned: the run id, or the path of a model file. */
  model: string;
  /** The store's run when the model is one (its page links here). */
  runId: string | null;
  backbone: string;
  /** A line saying what was scored on what. */
  label: string;
  /** The metric the heatmap colours by, and whether higher is better. */
  headline: string;
  higherIsBetter: boolean;
  dense: Record<string, number>;
  createdAt: string;
}

export interface PruneResult {
  kind: "activation" | "weight";
  pattern: string;
  criterion: string;
  mitigation: string;
  metrics: Record<string, number> | null;
  bits: number | null;
  refused: string | null;
}

/** Writes one evaluation and its rows as they are scored (a sweep cut short keeps its rows). */
export class PruneRecorder {
  private seq = 0;

  constructor(private readonly store: RunStore, readonly evaluation: PruneEvaluation) {
    store.db.exec(SCHEMA);
    store.db.prepare(
      `insert into prune_evaluations
       (id, model, run_id, backbone, label, headline, higher_is_better, dense, created_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      evaluation.id,
      evaluation.model,
      evaluation.runId,
      evaluation.backbone,
      evaluation.label,
      evaluation.headline,
      evaluation.higherIsBetter ? 1 : 0,
      JSON.stringify(evaluation.dense),
      evaluation.createdAt,
    );
  }

  add(r: PruneResult): void {
    this.store.db.prepare(
      `insert into prune_results
       (evaluation_id, seq, kind, pattern, criterion, mitigation, metrics, bits, refused)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      this.evaluation.id,
      this.seq++,
      r.kind,
      r.pattern,
      r.criterion,
      r.mitigation,
      r.metrics ? JSON.stringify(r.metrics) : null,
      r.bits,
      r.refused,
    );
  }
}

type Row = Record<string, unknown>;

function evaluationOf(r: Row): PruneEvaluation {
  return {
    id: r.id as string,
    model: r.model as string,
    runId: (r.run_id as string | null) ?? null,
    backbone: r.backbone as string,
    label: r.label as string,
    headline: r.headline as string,
    higherIsBetter: r.higher_is_better === 1,
    dense: JSON.parse(r.dense as string),
    createdAt: r.created_at as string,
  };
}

/** Reads evaluations through its own read-only connection, opened when the tables exist. */
export class PruneReader {
  #db: DatabaseSync | null = null;

  constructor(private readonly path: string) {}

  static open(dir: string): PruneReader {
    return new PruneReader(`${dir}/runs.sqlite`);
  }

  #ready(): DatabaseSync | null {
    if (!this.#db) {
      try {
        Deno.statSync(this.path);
      } catch {
        return null;
      }
      this.#db = new DatabaseSync(this.path, { readOnly: true });
      this.#db.exec("pragma busy_timeout = 5000");
    }
    const found = this.#db.prepare(
      "select count(*) as n from sqlite_master where type = 'table' and name = 'prune_results'",
    ).get() as Row;
    return found.n === 1 ? this.#db : null;
  }

  /** A run's evaluations, newest first. */
  evaluationsOfRun(runId: string): PruneEvaluation[] {
    const db = this.#ready();
    if (!db) return [];
    return db.prepare(
      "select * from prune_evaluations where run_id = ? order by created_at desc, id desc",
    ).all(runId).map((r) => evaluationOf(r as Row));
  }

  evaluation(id: string): { evaluation: PruneEvaluation; results: PruneResult[] } | null {
    const db = this.#ready();
    if (!db) return null;
    const e = db.prepare("select * from prune_evaluations where id = ?").get(id) as Row | undefined;
    if (!e) return null;
    const results = db.prepare(
      "select * from prune_results where evaluation_id = ? order by seq",
    ).all(id).map((r) => {
      const row = r as Row;
      return {
        kind: row.kind as PruneResult["kind"],
        pattern: row.pattern as string,
        criterion: row.criterion as string,
        mitigation: row.mitigation as string,
        metrics: row.metrics ? JSON.parse(row.metrics as string) : null,
        bits: (row.bits as number | null) ?? null,
        refused: (row.refused as string | null) ?? null,
      };
    });
    return { evaluation: evaluationOf(e), results };
  }

  close(): void {
    this.#db?.close();
    this.#db = null;
  }
}
