/**
 * Fine-tuning a pruned language model (methods.md §4) through the generic loop inside a run
 * session: load a run → score it dense → prune it → score it pruned → adapt its layers (GIFT-SW,
 * LoRA or full) → train on random windows of its training split → merge the adapters into the
 * weights and score the result as deployed (weight pruning: also pruned again, since an update
 * may fill pruned places). The store gets per-epoch validation and, at the end, the groups
 * dense_*, pruned_*, finetuned_*, repruned_* and budget_* (trainable parameters and the bytes the
 * allocator holds for them and their Adam moments).
 */
import { RandomWindows } from "../data/text.ts";
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
import type { Engine } from "../tensor/engine.ts";
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
import { type Evaluator, runInSession, runLoop, START } from "./loop.ts";
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

export async function finetuneLm(
  engine: Engine,
  c: FinetuneConfig,
  opts: { logger: Logger; signal?: AbortSignal },
): Promise<FinetuneResult> {
  const { logger } = opts;
  const [out, id] = runLocation(c.model!, c.out);
  const spec = parseBackbonePruning(c.prune, c.criterion);
  const roles = parseRoles(c.layers, ["q", "k", "v", "o", "gate", "up", "down"]);
  const { model, run } = await loadLmRun(engine, out, id, c.checkpoint as "best" | "last");
  const data: LmData = await prepareText(run);
  const objective = tokenObjectiveOf(run.loss);
  const seqLen = c.seqLen || run.seqLen;
  const batchSize = c.batchSize || run.batchSize;
  if (seqLen > run.model.maxLen) {
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
  // Calibration: forward passes over the start of the training split (the loss is unused).
  const calibrate = async () =>
    void (await evaluateText(model, objective, train, {
      seqLen,
      batchSize,
      limit: c.calibTokens,
      charsPerToken: 1,
    }));
  const dense = await score();
  const { chosen, skipped } = chooseLayers(model, roles, spec.sparsity);
  const backbone = await PrunedBackbone.create(model, spec, chosen, calibrate);
  const pruned = await score();
  logger.event("pruned", {
    pruning: pruningName(spec),
    layers: chosen.length,
    skipped: skipped.length ? skipped.join(",") : "none",
    dense_loss: dense.loss,
    pruned_loss: pruned.loss,
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
  }, calibrate);
  await backbone.forTraining();
  const clock: NoiseClock = { training: false, step: 0 };
  const adaptation = await adapt(model, c.method, plans, { seed: c.seed, clock });
  const optimizer = new Adam(adaptation.trainable, { lr: c.lr, decoupled: true });
  const trainableParams = elementsOf(adaptation.trainable);
  const method = c.method === "gift-sw" && c.noNoise ? "gift-sw (no noise)" : c.method;
  const session = await RunSession.open({
    out: c.out,
    resume: null,
    name: c.name ?? `${id}-${c.prune}-${method.replace(/[ ()]+/g, "-").replace(/-$/, "")}`,
    dataset: data.label,
    config: { ...c, task: "finetune" },
    configFile: { ...c, task: "finetune", base: { run: id, out, model: run.model } },
    logger,
  });
  let trainableBytes = 0;
  const evaluator: Evaluator = {
    select: { key: "loss", higherIsBetter: false },
    headline: ["loss", "bpc"],
    validate: () => {
      clock.training = false;
      return score();
    },
    final: async () => {
      clock.training = false;
      trainableBytes = allocatedBytes([
        ...adaptation.trainable,
        ...Object.values(optimizer.stateTensors()),
      ]);
      await adaptation.merge();
      await backbone.deploy();
      const finetuned = await score();
      const undo = await backbone.reprune(calibrate);
      const repruned = spec.kind === "weight" ? await score() : null;
      undo();
      await saveCheckpoint(`${session.runDir}/merged.safetensors`, model, null, START);
      const budget = { trainable_params: trainableParams, trainable_bytes: trainableBytes };
      return {
        valid: finetuned,
        groups: {
          dense,
          pruned,
          finetuned,
          ...(repruned ? { repruned } : {}),
          budget,
        },
      };
    },
  };
  const perEpoch = c.stepsPerEpoch || c.steps;
  const batches = new RandomWindows(train, {
    batchSize,
    seqLen,
    stepsPerEpoch: perEpoch,
    seed: c.seed,
  });
  const { result, wallSeconds, peakBytes } = await runInSession(
    engine,
    session,
    () => optimizer.dispose(),
    () => {
      logger.emit({
        event: "run",
        run: session.runId,
        dataset: data.label,
        objective: `${method} after ${pruningName(spec)}`,
        // The full model's training estimate: an upper bound when only adapters train.
        estimate_bytes: estimateLmTrainingBytes(
          { ...run, batchSize, seqLen },
          data.tokenizer.vocabSize,
        ),
        adapter: engine.gpu.adapterName,
        resumed: false,
        base: id,
        layers: plans.length,
        trainable_params: trainableParams,
        lora_ranks: [...new Set(adaptation.ranks.values())].join(",") || "none",
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
            return windowLoss(model, objective, batch);
          },
          evaluator,
          tokensOf: (batch) => batch.targets.length,
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
