/**
 * Fine-tuning a pruned language model (methods.md §4) through the generic loop inside a run
 * session: load a run → score it dense → prune it → score it pruned → adapt its layers (GIFT-SW,
 * LoRA or full) → train on random windows of its training split → merge the adapters into the
 * weights and score the result as deployed (weight pruning: also pruned again, since an update
 * may fill pruned places). The store gets per-epoch validation and, at the end, the groups
 * dense_*, pruned_*, finetuned_*, repruned_* and budget_* (trainable parameters and the bytes the
 * allocator holds for them and their Adam moments).
 */
import { RandomWindows, type TokenBatch } from "../data/text.ts";
import { adapt, allocatedBytes, elementsOf } from "../finetune/adapt.ts";
import {
  chooseLayers,
  parseBackbonePruning,
  PrunedBackbone,
  pruningName,
} from "../finetune/backbone.ts";
import type { NoiseClock } from "../finetune/gift.ts";
import { planLayers } from "../finetune/plan.ts";
import { tokenObjectiveOf } from "../loss/token_objectives.ts";
import { LAYER_ROLES, type LayerRole } from "../prune/activation.ts";
import type { Module } from "../nn/module.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import type { MetricGroup } from "./events.ts";
import type { FinetuneConfig } from "./finetune_config.ts";
import {
  estimateLmTrainingBytes,
  evaluateText,
  type LmData,
  loadLmRun,
  prepareText,
  windowLoss,
} from "./lm.ts";
import type { Logger } from "./log.ts";
import { type BatchStream, type Evaluator, runInSession, runLoop, START } from "./loop.ts";
import { Adam } from "./optim.ts";
import { RunSession } from "./session.ts";

export interface FinetuneResult {
  runId: string;
  runDir: string;
  status: "finished" | "failed" | "stopped";
  error: string | null;
  /** Validation loss dense, pruned, fine-tuned (merged) and, for weight pruning, re-pruned. */
  groups: Record<string, MetricGroup>;
  trainableParams: number;
  trainableBytes: number;
  peakBytes: number;
  wallSeconds: number;
}

/** "runs/ID" → ["runs", "ID"]; a bare id lives under `out`. */
export function runLocation(model: string, out: string): [string, string] {
  const path = model.replace(/\/+$/, "");
  const at = path.lastIndexOf("/");
  return at < 0 ? [out, path] : [path.slice(0, at), path.slice(at + 1)];
}

/** `--layers` as roles; empty: `all`. */
export function parseRoles(text: string, all: readonly LayerRole[]): LayerRole[] {
  if (!text) return [...all];
  const roles = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const r of roles) {
    if (!(LAYER_ROLES as readonly string[]).includes(r)) {
      throw new RangeError(`--layers: unknown ${r} (one of ${LAYER_ROLES.join(", ")})`);
    }
  }
  return roles as LayerRole[];
}

/**
 * What a backbone brings to fine-tuning: its model and the base run it came from, the layer roles
 * to prune, how it is scored and calibrated, and its training batches and loss.
 */
export interface FinetuneBackbone<B> {
  out: string;
  id: string;
  /** What the run file records of the base run. */
  base: Record<string, unknown>;
  dataset: string;
  model: Module;
  roles: readonly LayerRole[];
  /** Every figure recorded for a state of the model (dense, pruned, fine-tuned, re-pruned). */
  score(): Promise<MetricGroup>;
  /** Forward passes over calibration data. */
  calibrate(): Promise<void>;
  select: Evaluator["select"];
  headline: string[];
  /** The per-epoch validation figures. */
  validate(): Promise<MetricGroup>;
  /** The validation group within a score. */
  validOf(score: MetricGroup): MetricGroup;
  /** What the "pruned" event shows of the dense and pruned scores. */
  prunedFigures(dense: MetricGroup, pruned: MetricGroup): Record<string, unknown>;
  batches(perEpoch: number): BatchStream<B>;
  loss(batch: B, step: number): Tensor;
  tokensOf(batch: B): number;
  /** The objective trained, after the method and the pruning in the run's description. */
  objective: string;
  /** The full model's training estimate: an upper bound when only adapters train. */
  estimateBytes: number;
  runFields?: Record<string, unknown>;
  /** Releases what the backbone built for training (not the model). */
  dispose(): void;
}

/**
 * Scores the backbone dense → prunes it → scores it pruned → adapts its layers → trains them
 * through the generic loop in a run session → merges and scores the result as deployed (weight
 * pruning: also pruned again).
 */
export async function finetuneBackbone<B>(
  engine: Engine,
  c: FinetuneConfig,
  b: FinetuneBackbone<B>,
  opts: { logger: Logger; signal?: AbortSignal },
): Promise<FinetuneResult> {
  const { logger } = opts;
  const { model } = b;
  const spec = parseBackbonePruning(c.prune, c.criterion);
  const dense = await b.score();
  const { chosen, skipped } = chooseLayers(model, b.roles, spec.sparsity);
  const backbone = await PrunedBackbone.create(model, spec, chosen, b.calibrate);
  const pruned = await b.score();
  logger.event("pruned", {
    pruning: pruningName(spec),
    layers: chosen.length,
    skipped: skipped.length ? skipped.join(",") : "none",
    ...b.prunedFigures(dense, pruned),
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
  }, b.calibrate);
  await backbone.forTraining();
  const clock: NoiseClock = { training: false, step: 0 };
  const adaptation = await adapt(model, c.method, plans, { seed: c.seed, clock });
  const optimizer = new Adam(adaptation.trainable, { lr: c.lr, decoupled: true });
  const trainableParams = elementsOf(adaptation.trainable);
  const method = c.method === "gift-sw" && c.noNoise ? "gift-sw (no noise)" : c.method;
  // The store's URL may hold a password: it is where the run goes, not part of it.
  const { store: _store, ...recorded } = c;
  const session = await RunSession.open({
    out: c.out,
    store: c.store,
    resume: null,
    name: c.name ?? `${b.id}-${c.prune}-${method.replace(/[ ()]+/g, "-").replace(/-$/, "")}`,
    dataset: b.dataset,
    config: { ...recorded, task: "finetune" },
    configFile: { ...recorded, task: "finetune", base: { run: b.id, out: b.out, ...b.base } },
    logger,
  });
  let trainableBytes = 0;
  const evaluator: Evaluator = {
    select: b.select,
    headline: b.headline,
    validate: () => {
      clock.training = false;
      return b.validate();
    },
    final: async () => {
      clock.training = false;
      trainableBytes = allocatedBytes([
        ...adaptation.trainable,
        ...Object.values(optimizer.stateTensors()),
      ]);
      await adaptation.merge();
      await backbone.deploy();
      const finetuned = await b.score();
      const undo = await backbone.reprune(b.calibrate);
      const repruned = spec.kind === "weight" ? await b.score() : null;
      undo();
      await saveCheckpoint(`${session.runDir}/merged.safetensors`, model, null, START);
      const budget = { trainable_params: trainableParams, trainable_bytes: trainableBytes };
      return {
        valid: b.validOf(finetuned),
        groups: { dense, pruned, finetuned, ...(repruned ? { repruned } : {}), budget },
      };
    },
  };
  const perEpoch = c.stepsPerEpoch || c.steps;
  const { result, wallSeconds, peakBytes } = await runInSession(
    engine,
    session,
    () => {
      optimizer.dispose();
      b.dispose();
    },
    () => {
      logger.emit({
        event: "run",
        run: session.runId,
        dataset: b.dataset,
        objective: `${method} after ${pruningName(spec)}${b.objective}`,
        estimate_bytes: b.estimateBytes,
        adapter: engine.gpu.adapterName,
        resumed: false,
        base: b.id,
        layers: plans.length,
        trainable_params: trainableParams,
        lora_ranks: [...new Set(adaptation.ranks.values())].join(",") || "none",
        ...b.runFields,
      });
      return runLoop(
        engine,
        {
          model: adaptation.module,
          optimizer,
          batches: b.batches(perEpoch),
          loss: (batch, step) => {
            clock.training = true;
            clock.step = step;
            return b.loss(batch, step);
          },
          evaluator,
          tokensOf: (batch) => b.tokensOf(batch),
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

export function finetuneLm(
  engine: Engine,
  c: FinetuneConfig,
  opts: { logger: Logger; signal?: AbortSignal },
): Promise<FinetuneResult> {
  return lmBackbone(engine, c).then((b) => finetuneBackbone(engine, c, b, opts));
}

async function lmBackbone(
  engine: Engine,
  c: FinetuneConfig,
): Promise<FinetuneBackbone<TokenBatch>> {
  const [out, id] = runLocation(c.model!, c.out);
  const roles = parseRoles(c.layers, ["q", "k", "v", "o", "gate", "up", "down"]);
  const { model, run } = await loadLmRun(engine, out, id, c.checkpoint as "best" | "last");
  const data: LmData = await prepareText(run);
  const objective = tokenObjectiveOf(run.loss);
  const seqLen = c.seqLen || run.seqLen;
  const batchSize = c.batchSize || run.batchSize;
  if (seqLen > run.model.maxLen) {
    model.dispose();
    throw new RangeError(`--seq-len ${seqLen} exceeds the model's context ${run.model.maxLen}`);
  }
  const { train, valid, validChars } = data.split;
  const score = () =>
    evaluateText(model, objective, valid, {
      seqLen,
      batchSize,
      limit: c.evalTokens,
      charsPerToken: validChars / valid.length,
    });
  return {
    out,
    id,
    base: { model: run.model },
    dataset: data.label,
    model,
    roles,
    score,
    // Calibration: forward passes over the start of the training split (the loss is unused).
    calibrate: async () =>
      void (await evaluateText(model, objective, train, {
        seqLen,
        batchSize,
        limit: c.calibTokens,
        charsPerToken: 1,
      })),
    select: { key: "loss", higherIsBetter: false },
    headline: ["loss", "bpc"],
    validate: score,
    validOf: (finetuned) => finetuned,
    prunedFigures: (dense, pruned) => ({ dense_loss: dense.loss, pruned_loss: pruned.loss }),
    batches: (perEpoch) =>
      new RandomWindows(train, { batchSize, seqLen, stepsPerEpoch: perEpoch, seed: c.seed }),
    loss: (batch) => windowLoss(model, objective, batch),
    tokensOf: (batch) => batch.targets.length,
    objective: "",
    estimateBytes: estimateLmTrainingBytes({ ...run, batchSize, seqLen }, data.tokenizer.vocabSize),
    dispose: () => {},
  };
}
