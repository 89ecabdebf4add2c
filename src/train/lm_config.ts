/** `deno task lm:train`'s configuration: every flag, its default and help, and resume rules. */
import { TEXT_TOKENIZERS, type TextTokenizerKind } from "../data/text.ts";
import { TOKEN_OBJECTIVE_NAMES, tokenObjectiveOf } from "../loss/token_objectives.ts";
import {
  checkStore,
  ConfigError,
  flagsHelp,
  type FlagSpec,
  mergeResume,
  parseFlags,
  requireWholeNumbers,
  STORE_FLAG,
} from "./flags.ts";

export interface LmConfig {
  data: string | null;
  tokenizer: TextTokenizerKind;
  /** A registered token objective (src/loss/token_objectives.ts). */
  loss: string;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** SwiGLU width. */
  hidden: number;
  seqLen: number;
  batchSize: number;
  stepsPerEpoch: number;
  epochs: number;
  lr: number;
  weightDecay: number;
  clip: number;
  untied: boolean;
  ropeTheta: number;
  seed: number;
  patience: number;
  evalEvery: number;
  /** Validation tokens scored after each epoch (0: the whole validation split). */
  evalTokens: number;
  out: string;
  /** The run store: a postgres:// URL; null: `<out>/runs.sqlite`. */
  store: string | null;
  name: string | null;
  resume: string | null;
  memoryLimit: number | null;
  json: boolean;
}

/**
 * The README's default run: a 186k-parameter model that reaches validation loss ≤ 1.9 nats per
 * character on tinyshakespeare in 600 steps, about ten minutes on two CPU cores with llvmpipe.
 */
export const LM_DEFAULTS: LmConfig = {
  data: null,
  tokenizer: "char",
  loss: "ce",
  dim: 64,
  layers: 4,
  heads: 4,
  kvHeads: 2,
  hidden: 172,
  seqLen: 64,
  batchSize: 64,
  stepsPerEpoch: 100,
  epochs: 6,
  lr: 3e-3,
  weightDecay: 0,
  clip: 1,
  untied: false,
  ropeTheta: 10000,
  seed: 0,
  patience: 1000,
  evalEvery: 1,
  evalTokens: 16384,
  out: "runs",
  store: null,
  name: null,
  resume: null,
  memoryLimit: null,
  json: false,
};

const FLAGS: Record<string, FlagSpec<keyof LmConfig>> = {
  data: { key: "data", type: "string", help: "a plain-text file (required unless --resume)" },
  tokenizer: {
    key: "tokenizer",
    type: "string",
    help: "characters of the text, or UTF-8 bytes",
    choices: TEXT_TOKENIZERS,
  },
  loss: {
    key: "loss",
    type: "string",
    help: "objective: " + TOKEN_OBJECTIVE_NAMES.map((n) => `${n} ${tokenObjectiveOf(n).help}`),
    choices: TOKEN_OBJECTIVE_NAMES,
  },
  dim: { key: "dim", type: "number", help: "model width" },
  layers: { key: "layers", type: "number", help: "decoder layers" },
  heads: { key: "heads", type: "number", help: "query heads" },
  "kv-heads": { key: "kvHeads", type: "number", help: "key-value heads (grouped-query)" },
  hidden: { key: "hidden", type: "number", help: "SwiGLU feed-forward width" },
  "seq-len": { key: "seqLen", type: "number", help: "tokens of context per training window" },
  "batch-size": { key: "batchSize", type: "number", help: "windows per step" },
  "steps-per-epoch": {
    key: "stepsPerEpoch",
    type: "number",
    help: "optimiser steps between validations",
  },
  epochs: { key: "epochs", type: "number", help: "epochs of --steps-per-epoch steps" },
  lr: { key: "lr", type: "number", help: "Adam learning rate" },
  "weight-decay": { key: "weightDecay", type: "number", help: "AdamW decoupled weight decay" },
  clip: { key: "clip", type: "number", help: "global gradient-norm clip (0: off)" },
  untied: { key: "untied", type: "boolean", help: "an output head of its own" },
  "rope-theta": { key: "ropeTheta", type: "number", help: "rotary base" },
  seed: { key: "seed", type: "number", help: "initialisation and batch order" },
  patience: {
    key: "patience",
    type: "number",
    help: "validations without a lower loss before stopping",
  },
  "eval-every": { key: "evalEvery", type: "number", help: "validate every N epochs" },
  "eval-tokens": {
    key: "evalTokens",
    type: "number",
    help: "validation tokens per epoch (0: all; the final figures use all)",
  },
  out: { key: "out", type: "string", help: "runs folder" },
  store: STORE_FLAG,
  name: { key: "name", type: "string", help: "run name" },
  resume: { key: "resume", type: "string", help: "continue this run from its last checkpoint" },
  "memory-limit": {
    key: "memoryLimit",
    type: "string",
    help: "GPU memory budget (e.g. 2GiB)",
    bytes: true,
  },
  json: { key: "json", type: "boolean", help: "one JSON object per event" },
};

/** Settings a resumed run may change (they are recorded); everything else must match. */
const RESUME_MAY_CHANGE: readonly (keyof LmConfig)[] = ["epochs", "patience", "evalEvery"];
/** How to run, not what is trained. */
const RUNTIME_ONLY: readonly (keyof LmConfig)[] = ["out", "store", "resume", "json", "memoryLimit"];

export interface ParsedLmArgs {
  config: LmConfig;
  given: Set<keyof LmConfig>;
  help: boolean;
}

export function parseLmTrainArgs(args: string[]): ParsedLmArgs {
  const { config: c, given, help } = parseFlags(args, FLAGS, LM_DEFAULTS);
  if (!help && !c.data && !c.resume) {
    throw new ConfigError("--data FILE is required (a plain-text file), or --resume ID");
  }
  return { config: help ? c : validateLm(c), given, help };
}

export function validateLm(c: LmConfig): LmConfig {
  requireWholeNumbers(FLAGS, c, [
    "dim",
    "layers",
    "heads",
    "kvHeads",
    "hidden",
    "seqLen",
    "batchSize",
    "stepsPerEpoch",
    "epochs",
    "patience",
    "evalEvery",
  ], 1);
  requireWholeNumbers(FLAGS, c, ["seed", "evalTokens"], 0);
  if (c.dim % c.heads !== 0 || (c.dim / c.heads) % 2 !== 0) {
    throw new ConfigError(
      `--dim ${c.dim} over --heads ${c.heads} must give an even head width (rotary pairs)`,
    );
  }
  if (c.heads % c.kvHeads !== 0) {
    throw new ConfigError(`--heads ${c.heads} is not a multiple of --kv-heads ${c.kvHeads}`);
  }
  if (!(c.lr > 0) || !(c.ropeTheta > 0)) {
    throw new ConfigError("--lr and --rope-theta must be > 0");
  }
  if (!(c.weightDecay >= 0) || !(c.clip >= 0)) {
    throw new ConfigError("--weight-decay and --clip must be ≥ 0");
  }
  checkStore(c.store);
  return c;
}

/**
 * The configuration a resumed run continues with: the stored one, with the given flags that may
 * change on resume and the runtime flags applied; see mergeResume.
 */
export function resumeLmConfig(
  stored: Record<string, unknown>,
  requested: LmConfig,
  given: Iterable<keyof LmConfig>,
): LmConfig {
  return validateLm(
    mergeResume(
      FLAGS,
      LM_DEFAULTS,
      { mayChange: RESUME_MAY_CHANGE, runtimeOnly: RUNTIME_ONLY },
      stored,
      requested,
      given,
    ),
  );
}

export function lmTrainHelp(): string {
  const lines = [
    "Usage: deno task lm:train --data FILE [flags]",
    "",
    "Trains a Llama-style decoder on a plain-text file (90% train, 10% validation) and reports",
    "validation loss in nats per token, perplexity and bits per character.",
    "",
    ...flagsHelp(FLAGS, LM_DEFAULTS),
  ];
  return lines.join("\n");
}
