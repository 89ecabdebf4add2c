/**
 * Full-catalogue evaluation: the model reads each user's history, every item is scored on the
 * GPU, history items are excluded (unless keepSeen), and only the target ranks and top-k lists
 * are read back. Users are scored in chunks so that a 1M-item catalogue fits a bounded budget.
 */
import type { EvalExample } from "../data/split.ts";
import { evalBatches } from "../data/batches.ts";
import type { Scorer } from "../models/scorer.ts";
import { maskScores, targetRanks, topK } from "./ranking.ts";
import { DEFAULT_KS, RankingMetrics } from "./metrics.ts";

export interface EvalOptions {
  keepSeen: boolean;
  /** Bytes the score matrix of one chunk may take. */
  scoreBudget?: number;
  ks?: number[];
}

const DEFAULT_SCORE_BUDGET = 64 * 1024 * 1024;
const MAX_CHUNK = 256;

/** Users scored at once for a catalogue of `items` under the score budget. */
export function evalChunkSize(items: number, budget = DEFAULT_SCORE_BUDGET): number {
  return Math.max(1, Math.min(MAX_CHUNK, Math.floor(budget / ((items + 1) * 4))));
}

export async function evaluateRanking(
  scorer: Scorer,
  examples: readonly EvalExample[],
  opts: EvalOptions,
): Promise<Record<string, number>> {
  const ks = opts.ks ?? DEFAULT_KS;
  const { items, seqLen, engine: e } = scorer;
  const metrics = new RankingMetrics(ks, items);
  const chunk = evalChunkSize(items, opts.scoreBudget);
  const maxK = Math.min(Math.max(...ks), items);
  for (const batch of evalBatches(examples, chunk, seqLen)) {
    const { ranks, lists } = await e.tidyAsync(async () => {
      // The forward's intermediates go as soon as the scores exist, before ranking allocates.
      const scores = e.noGrad(() => e.tidy(() => scorer.score(batch)));
      maskScores(scores, opts.keepSeen ? undefined : historyCsr(batch.examples));
      const ranks = await targetRanks(scores, batch.targets).read();
      const lists = await topK(scores, maxK).read();
      return { ranks, lists: lists as Int32Array };
    });
    metrics.add(ranks, widen(lists, batch.batch, maxK, Math.max(...ks)));
  }
  return metrics.result();
}

/** The user's whole history (not only the last seqLen items) is excluded, as in the peer. */
function historyCsr(examples: readonly EvalExample[]) {
  const offsets = new Int32Array(examples.length + 1);
  examples.forEach((ex, i) => (offsets[i + 1] = offsets[i] + ex.history.length));
  const items = new Int32Array(offsets[examples.length]);
  examples.forEach((ex, i) => items.set(ex.history, offsets[i]));
  return { offsets, items };
}

/** Pads top-k rows to `width` with holes when the catalogue has fewer items than the largest k. */
function widen(lists: Int32Array, rows: number, k: number, width: number): Int32Array {
  if (k === width) return lists;
  const out = new Int32Array(rows * width).fill(-1);
  for (let r = 0; r < rows; r++) out.set(lists.subarray(r * k, (r + 1) * k), r * width);
  return out;
}
