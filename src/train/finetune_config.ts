/** `deno task finetune`'s configuration: every flag, its default and help, and its checks. */
import { FINETUNE_METHODS, type FinetuneMethod } from "../finetune/adapt.ts";
import { SALIENT_SCORES, type SalientScore } from "../finetune/salient.ts";
import {
  checkStore,
  ConfigError,
  flagOf,
  flagsHelp,
  type FlagSpec,
  parseFlags,
  requireWholeNumbers,
  STORE_FLAG,
} from "./flags.ts";

export interface FinetuneConfig {
  method: FinetuneMethod;
  /** GIFT-SW without noise. */
  noNoise: boolean;
  /** A run id under `out` or a run folder: a language-model run or a SASRec run. */
  model: string | null;
  checkpoint: string;
  /** weight-N:M, act-N:M (also uP for unstructured) or none. */
  prune: string;
  /** The pruning criterion: magnitude or wanda (weight), any activation criterion (act). */
  criterion: string;
  /**
   * Layer roles to prune and adapt (those whose width the pattern cannot group are skipped);
   * empty: every linear role of the model (LM q…down, SASRec q,k,v,o,fc1,fc2).
   */
  layers: string;
  steps: number;
  /** Steps between validations and checkpoints (0: all of them in one epoch). */
  stepsPerEpoch: number;
  lr: number;
  clip: number;
  /** Windows per step and their length (0: the base run's). */
  batchSize: number;
  seqLen: number;
  salient: number;
  score: SalientScore;
  rho: number;
  tau: number;
  gamma: number;
  bits: number;
  alphaGrid: boolean;
  calibTokens: number;
  evalTokens: number;
  /** SASRec: users scored on validation and test, sampled with the run's seed (0: the run's). */
  evalUsers: number;
  seed: number;
  out: string;
  /** The run store: a postgres:// URL; null: `<out>/runs.sqlite`. */
  store: string | null;
  name: string | null;
  json: boolean;
}

export const FINETUNE_DEFAULTS: FinetuneConfig = {
  method: "gift-sw",
  noNoise: false,
  model: null,
  checkpoint: "best",
  prune: "weight-8:16",
  criterion: "magnitude",
  layers: "",
  steps: 100,
  stepsPerEpoch: 0,
  lr: 1e-3,
  clip: 1,
  batchSize: 0,
  seqLen: 0,
  salient: 128,
  score: "max",
  rho: 2,
  tau: 2,
  gamma: 1,
  bits: 4,
  alphaGrid: false,
  calibTokens: 8192,
  evalTokens: 16384,
  evalUsers: 0,
  seed: 0,
  out: "runs",
  store: null,
  name: null,
  json: false,
};

const FLAGS: Record<string, FlagSpec<keyof FinetuneConfig>> = {
  method: {
    key: "method",
    type: "string",
    help: "what trains: salient columns with noise, a low-rank update, every weight",
    choices: FINETUNE_METHODS,
  },
  "no-noise": { key: "noNoise", type: "boolean", help: "GIFT-SW without its training noise" },
  model: {
    key: "model",
    type: "string",
    help: "a language-model or SASRec run id under --out, or its folder (required)",
  },
  checkpoint: {
    key: "checkpoint",
    type: "string",
    help: "best or last",
    choices: ["best", "last"],
  },
  prune: { key: "prune", type: "string", help: "weight-N:M, act-N:M (or -uP) or none" },
  criterion: { key: "criterion", type: "string", help: "the pruning criterion" },
  layers: {
    key: "layers",
    type: "string",
    help: "roles to prune and adapt (empty: LM q,k,v,o,gate,up,down; SASRec q,k,v,o,fc1,fc2)",
  },
  steps: { key: "steps", type: "number", help: "optimiser steps" },
  "steps-per-epoch": {
    key: "stepsPerEpoch",
    type: "number",
    help: "steps between validations (0: one epoch of --steps)",
  },
  lr: { key: "lr", type: "number", help: "Adam learning rate" },
  clip: { key: "clip", type: "number", help: "global gradient-norm clip (0: off)" },
  "batch-size": { key: "batchSize", type: "number", help: "windows per step (0: the run's)" },
  "seq-len": { key: "seqLen", type: "number", help: "tokens per window (0: the run's)" },
  salient: {
    key: "salient",
    type: "number",
    help: "salient columns per layer: a count (at most the width) or a fraction (0, 1)",
  },
  score: {
    key: "score",
    type: "string",
    help: "max: max|X col|; general: ‖D col‖_τ·‖X col‖_ρ^γ",
    choices: SALIENT_SCORES,
  },
  rho: { key: "rho", type: "number", help: "ρ of ‖X col‖_ρ" },
  tau: { key: "tau", type: "number", help: "τ of ‖D col‖_τ" },
  gamma: { key: "gamma", type: "number", help: "γ, the power of ‖X col‖_ρ" },
  bits: { key: "bits", type: "number", help: "b of the noise scale Δ = α/(2^(b−1)−1)" },
  "alpha-grid": { key: "alphaGrid", type: "boolean", help: "α_r by grid search, not max|W_r|" },
  "calib-tokens": {
    key: "calibTokens",
    type: "number",
    help: "training tokens calibrating salience and Wanda",
  },
  "eval-tokens": {
    key: "evalTokens",
    type: "number",
    help: "validation tokens per score (0: all)",
  },
  "eval-users": {
    key: "evalUsers",
    type: "number",
    help: "SASRec: validation and test users per score, seeded sample (0: the run's)",
  },
  seed: { key: "seed", type: "number", help: "batch order, noise and LoRA initialisation" },
  out: { key: "out", type: "string", help: "runs folder (the base run is read from it)" },
  store: STORE_FLAG,
  name: { key: "name", type: "string", help: "run name" },
  json: { key: "json", type: "boolean", help: "one JSON object per event" },
};

export function parseFinetuneArgs(args: string[]): { config: FinetuneConfig; help: boolean } {
  const { config, help } = parseFlags(args, FLAGS, FINETUNE_DEFAULTS);
  return { config: help ? config : validateFinetune(config), help };
}

export function validateFinetune(c: FinetuneConfig): FinetuneConfig {
  if (!c.model) {
    throw new ConfigError("--model RUN|PATH is required (a language-model or SASRec run)");
  }
  requireWholeNumbers(FLAGS, c, ["steps", "bits"], 1);
  requireWholeNumbers(FLAGS, c, [
    "stepsPerEpoch",
    "batchSize",
    "seqLen",
    "calibTokens",
    "evalTokens",
    "evalUsers",
    "seed",
  ], 0);
  const per = c.stepsPerEpoch || c.steps;
  if (c.steps % per !== 0) {
    throw new ConfigError(`--steps ${c.steps} is not a multiple of --steps-per-epoch ${per}`);
  }
  for (const k of ["lr", "salient", "rho", "tau", "gamma"] as const) {
    if (!(c[k] > 0)) throw new ConfigError(`--${flagOf(FLAGS, k)} must be > 0, got ${c[k]}`);
  }
  if (!(c.clip >= 0)) throw new ConfigError(`--clip must be ≥ 0, got ${c.clip}`);
  if (c.noNoise && c.method !== "gift-sw") {
    throw new ConfigError(`--no-noise is GIFT-SW's; --method ${c.method} has no noise`);
  }
  if (c.method === "gift-sw" && c.calibTokens < 1) {
    throw new ConfigError("--calib-tokens must be ≥ 1: GIFT-SW chooses columns on them");
  }
  checkStore(c.store);
  return c;
}

export function finetuneHelp(): string {
  const lines = [
    "Usage: deno task finetune --method gift-sw|lora|full --model RUN|PATH [flags]",
    "",
    "Prunes a language-model or SASRec run (weight or activation N:M), then fine-tunes it on its",
    "training data: GIFT-SW (salient columns with noise), LoRA at the same trainable count, or",
    "every weight. Reports validation loss (LM) or validation and test NDCG@10 and HR@10",
    "(SASRec) dense, pruned and after fine-tuning.",
    "",
    ...flagsHelp(FLAGS, FINETUNE_DEFAULTS),
  ];
  return lines.join("\n");
}
