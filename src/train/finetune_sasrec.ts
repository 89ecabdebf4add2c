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
import { adapt, allocatedBytes, elementsOf } from "../finetune/adapt.ts";
import {
  chooseLayers,
  parseBackbonePruning,
  PrunedBackbone,
  pruningName,
} from "../finetune/backbone.ts";
import type { NoiseClock } from "../finetune/gift.ts";
import { planLayers } from "../finetune/plan.ts";
import type { Engine } from "../tensor/engine.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import type { MetricGroup } from "./events.ts";
import { type FinetuneResult, parseRoles, runLocation } from "./finetune.ts";
import type { FinetuneConfig } from "./finetune_config.ts";
import type { Logger } from "./log.ts";
import { type BatchStream, type Evaluator, runInSession, runLoop, START } from "./loop.ts";
import { Adam } from "./optim.ts";
import { batchOptions, estimateFor, RecommenderTraining } from "./recommender.ts";
import { openSasrecRun } from "./sasrec_run.ts";
import { RunSession } from "./session.ts";

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
  const { logger } = opts;
  const [out, id] = runLocation(c.model!, c.out);
  if (c.seqLen) throw new RangeError("--seq-len is the language model's; SASRec uses its run's");
  const spec = parseBackbonePruning(c.prune, c.criterion);
  const roles = parseRoles(c.layers, SASREC_ROLES);
  const run = await openSasrecRun(engine, out, id, saved, {
    checkpoint: c.checkpoint as "best" | "last",
    calibTokens: c.calibTokens,
    evalUsers: c.evalUsers,
  });
  const { model, data } = run;
  // The run's objective and batches, at this run's batch size, seed, clip and dropout.
  const config = { ...run.config, batchSize: c.batchSize || run.config.batchSize, seed: c.seed };
  const dense = await run.score();
  const { chosen, skipped } = chooseLayers(model, roles, spec.sparsity);
  const backbone = await PrunedBackbone.create(model, spec, chosen, run.calibrate);
  const pruned = await run.score();
  logger.event("pruned", {
    pruning: pruningName(spec),
    layers: chosen.length,
    skipped: skipped.length ? skipped.join(",") : "none",
    "dense_test_ndcg@10": dense["test_ndcg@10"],
    "pruned_test_ndcg@10": pruned["test_ndcg@10"],
  });
  const noise = c.method === "gift-sw" && !c.noNoise;
  const plans = await planLayers(backbone, c.method, {
    salient: c.salient,
    score: c.score,
    rho: c.rho,
    general: { tau: c.tau, gamma: c.gamma },
    bits: c.bits,
    alphaGrid: c.alphaGrid,
    noise,
  }, run.calibrate);
  await backbone.forTraining();
  const clock: NoiseClock = { training: false, step: 0 };
  const adaptation = await adapt(model, c.method, plans, { seed: c.seed, clock });
  const optimizer = new Adam(adaptation.trainable, { lr: c.lr, decoupled: true });
  const training = new RecommenderTraining(engine, config, data, model);
  const trainableParams = elementsOf(adaptation.trainable);
  const method = c.method === "gift-sw" && c.noNoise ? "gift-sw (no noise)" : c.method;
  const session = await RunSession.open({
    out: c.out,
    resume: null,
    name: c.name ?? `${id}-${c.prune}-${method.replace(/[ ()]+/g, "-").replace(/-$/, "")}`,
    dataset: data.label,
    config: { ...c, task: "finetune" },
    configFile: { ...c, task: "finetune", base: { run: id, out, kind: "sasrec" } },
    logger,
  });
  let trainableBytes = 0;
  const evaluator: Evaluator = {
    select: { key: "ndcg@10", higherIsBetter: true },
    headline: ["ndcg@10", "hr@10"],
    validate: () => {
      clock.training = false;
      return run.validate();
    },
    final: async () => {
      clock.training = false;
      trainableBytes = allocatedBytes([
        ...adaptation.trainable,
        ...Object.values(optimizer.stateTensors()),
      ]);
      await adaptation.merge();
      await backbone.deploy();
      const finetuned = await run.score();
      const undo = await backbone.reprune(run.calibrate);
      const repruned = spec.kind === "weight" ? await run.score() : null;
      undo();
      await saveCheckpoint(`${session.runDir}/merged.safetensors`, model, null, START);
      const valid: MetricGroup = {
        "ndcg@10": finetuned["valid_ndcg@10"],
        "hr@10": finetuned["valid_hr@10"],
      };
      const budget = { trainable_params: trainableParams, trainable_bytes: trainableBytes };
      return {
        valid,
        groups: { dense, pruned, finetuned, ...(repruned ? { repruned } : {}), budget },
      };
    },
  };
  const perEpoch = c.stepsPerEpoch || c.steps;
  const batches = new StepBatches(
    new BatchIterator(data.split.train, batchOptions(config)),
    perEpoch,
  );
  const { result, wallSeconds, peakBytes } = await runInSession(
    engine,
    session,
    () => {
      optimizer.dispose();
      training.optimizer.dispose();
    },
    () => {
      logger.emit({
        event: "run",
        run: session.runId,
        dataset: data.label,
        objective: `${method} after ${pruningName(spec)} (${config.loss})`,
        // The full model's training estimate: an upper bound when only adapters train.
        estimate_bytes: estimateFor(config, data, c.steps).total,
        adapter: engine.gpu.adapterName,
        resumed: false,
        base: id,
        layers: plans.length,
        trainable_params: trainableParams,
        lora_ranks: [...new Set(adaptation.ranks.values())].join(",") || "none",
        validation_users: data.split.valid.length,
        test_users: data.split.test.length,
      });
      return runLoop(
        engine,
        {
          model: adaptation.module,
          optimizer,
          batches,
          loss: (batch, step) => {
            clock.training = true;
            clock.step = step;
            return training.loss(batch, step);
          },
          evaluator,
          tokensOf: (batch) => batch.positions,
        },
        { epochs: c.steps / perEpoch, evalEvery: 1, patience: Infinity, clip: c.clip },
        session,
        START,
        opts,
      );
    },
  );
  backbone.dispose();
  model.dispose();
  return {
    runId: session.runId,
    runDir: session.runDir,
    status: result.status,
    error: result.error,
    groups: result.groups,
    trainableParams,
    trainableBytes,
    peakBytes,
    wallSeconds,
  };
}
