/**
 * Fine-tuning a pruned SASRec run (methods.md §4), the recommender case of finetune.ts: open the
 * run (sasrec_run.ts) → score it dense → prune its attention projections and feed-forward layers
 * → score it pruned → adapt those layers (GIFT-SW, LoRA or full) → train with the run's own
 * batches and objective (RecommenderTraining around the loaded model) through the generic loop →
 * merge the adapters and score the result as deployed (weight pruning: also pruned again). Scores
 * are validation and test NDCG@10 and HR@10 over the whole catalogue; the store gets the groups
 * dense_*, pruned_*, finetuned_*, repruned_* and budget_*, as for the language model.
 */
import type { Batch } from "../data/batches.ts";
import { BatchIterator } from "../data/batches.ts";
import type { Engine } from "../tensor/engine.ts";
import type { MetricGroup } from "./events.ts";
import { finetuneBackbone, type FinetuneResult, parseRoles, runLocation } from "./finetune.ts";
import type { FinetuneConfig } from "./finetune_config.ts";
import type { Logger } from "./log.ts";
import type { BatchStream } from "./loop.ts";
import { batchOptions, estimateFor, RecommenderTraining } from "./recommender.ts";
import { openSasrecRun } from "./sasrec_run.ts";

const SASREC_ROLES = ["q", "k", "v", "o", "fc1", "fc2"] as const;

/**
 * `perEpoch` batches per epoch out of the run's shuffled epochs laid end to end: epoch i takes
 * batches [i·perEpoch, (i+1)·perEpoch) of that sequence, so a step count need not be a whole
 * number of passes over the users.
 */
export class StepBatches implements BatchStream<Batch> {
  constructor(private readonly source: BatchIterator, readonly batchesPerEpoch: number) {}

  *epoch(index: number): Generator<Batch> {
    const from = index * this.batchesPerEpoch;
    const to = from + this.batchesPerEpoch;
    let at = 0;
    for (let pass = 0; at < to; pass++) {
      let yielded = false;
      for (const b of this.source.epoch(pass)) {
        yielded = true;
        if (at >= from) yield b;
        if (++at >= to) return;
      }
      if (!yielded) throw new RangeError("no training sequence has two items: nothing to train on");
    }
  }
}

export async function finetuneSasrec(
  engine: Engine,
  c: FinetuneConfig,
  saved: Record<string, unknown>,
  opts: { logger: Logger; signal?: AbortSignal },
): Promise<FinetuneResult> {
  const [out, id] = runLocation(c.model!, c.out);
  if (c.seqLen) throw new RangeError("--seq-len is the language model's; SASRec uses its run's");
  const roles = parseRoles(c.layers, SASREC_ROLES);
  const run = await openSasrecRun(engine, out, id, saved, {
    checkpoint: c.checkpoint as "best" | "last",
    calibTokens: c.calibTokens,
    evalUsers: c.evalUsers,
  });
  const { model, data } = run;
  // The run's objective and batches, at this run's batch size, seed, clip and dropout.
  const config = { ...run.config, batchSize: c.batchSize || run.config.batchSize, seed: c.seed };
  const training = new RecommenderTraining(engine, config, data, model);
  return finetuneBackbone<Batch>(engine, c, {
    out,
    id,
    base: { kind: "sasrec" },
    dataset: data.label,
    model,
    roles,
    score: () => run.score(),
    calibrate: () => run.calibrate(),
    select: { key: "ndcg@10", higherIsBetter: true },
    headline: ["ndcg@10", "hr@10"],
    validate: () => run.validate(),
    validOf: (finetuned): MetricGroup => ({
      "ndcg@10": finetuned["valid_ndcg@10"],
      "hr@10": finetuned["valid_hr@10"],
    }),
    prunedFigures: (dense, pruned) => ({
      "dense_test_ndcg@10": dense["test_ndcg@10"],
      "pruned_test_ndcg@10": pruned["test_ndcg@10"],
    }),
    batches: (perEpoch) =>
      new StepBatches(new BatchIterator(data.split.train, batchOptions(config)), perEpoch),
    loss: (batch, step) => training.loss(batch, step),
    tokensOf: (batch) => batch.positions,
    objective: ` (${config.loss})`,
    estimateBytes: estimateFor(config, data, c.steps).total,
    runFields: { validation_users: data.split.valid.length, test_users: data.split.test.length },
    dispose: () => training.optimizer.dispose(),
  }, opts);
}
