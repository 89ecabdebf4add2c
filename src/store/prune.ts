/**
 * Pruning evaluations in the run store (`deno task prune`, src/prune), in the tables PRUNE_TABLES
 * defines (schema.ts): written by PruneRecorder through the run store's connection, read by the
 * functions below over any connection (the dashboard's reader uses them).
 */
import type { RunStore } from "./runs.ts";
import { ensureTables, PRUNE_TABLES } from "./schema.ts";
import type { Row, Sql } from "./sql.ts";

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

  private constructor(private readonly store: RunStore, readonly evaluation: PruneEvaluation) {}

  static async start(store: RunStore, evaluation: PruneEvaluation): Promise<PruneRecorder> {
    await ensureTables(store.db, PRUNE_TABLES);
    await store.db.run(
      `insert into prune_evaluations
       (id, model, run_id, backbone, label, headline, higher_is_better, dense, created_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        evaluation.id,
        evaluation.model,
        evaluation.runId,
        evaluation.backbone,
        evaluation.label,
        evaluation.headline,
        evaluation.higherIsBetter ? 1 : 0,
        JSON.stringify(evaluation.dense),
        evaluation.createdAt,
      ],
    );
    return new PruneRecorder(store, evaluation);
  }

  async add(r: PruneResult): Promise<void> {
    await this.store.db.run(
      `insert into prune_results
       (evaluation_id, seq, kind, pattern, criterion, mitigation, metrics, bits, refused)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        this.evaluation.id,
        this.seq++,
        r.kind,
        r.pattern,
        r.criterion,
        r.mitigation,
        r.metrics ? JSON.stringify(r.metrics) : null,
        r.bits,
        r.refused,
      ],
    );
  }
}

function evaluationOf(r: Row): PruneEvaluation {
  return {
    id: r.id as string,
    model: r.model as string,
    runId: (r.run_id as string | null) ?? null,
    backbone: r.backbone as string,
    label: r.label as string,
    headline: r.headline as string,
    higherIsBetter: Number(r.higher_is_better) === 1,
    dense: JSON.parse(r.dense as string),
    createdAt: r.created_at as string,
  };
}

function resultOf(row: Row): PruneResult {
  return {
    kind: row.kind as PruneResult["kind"],
    pattern: row.pattern as string,
    criterion: row.criterion as string,
    mitigation: row.mitigation as string,
    metrics: row.metrics ? JSON.parse(row.metrics as string) : null,
    bits: (row.bits as number | null) ?? null,
    refused: (row.refused as string | null) ?? null,
  };
}

/** A run's evaluations, newest first. */
export async function pruneEvaluationsOfRun(db: Sql, runId: string): Promise<PruneEvaluation[]> {
  const rows = await db.all(
    "select * from prune_evaluations where run_id = ? order by created_at desc, id desc",
    [runId],
  );
  return rows.map(evaluationOf);
}

/** One evaluation and its rows in the order they were scored, or null. */
export async function pruneEvaluation(
  db: Sql,
  id: string,
): Promise<{ evaluation: PruneEvaluation; results: PruneResult[] } | null> {
  const e = await db.get("select * from prune_evaluations where id = ?", [id]);
  if (!e) return null;
  const rows = await db.all("select * from prune_results where evaluation_id = ? order by seq", [
    id,
  ]);
  return { evaluation: evaluationOf(e), results: rows.map(resultOf) };
}
