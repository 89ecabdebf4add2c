/** Training configuration: every flag of `deno task train`, its default and its help text. */
import {
  OBJECTIVE_NAMES,
  objectiveOf,
  type ObjectiveSettings,
  SAMPLER_KINDS,
  type SamplerKind,
} from "../loss/objectives.ts";
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
import { parseCatalog } from "../data/synthetic.ts";

export interface TrainConfig {
  data: string | null;
  format: "auto" | "csv" | "seq";
  catalog: string;
  userCol: string | null;
  itemCol: string | null;
  timeCol: string | null;
  ratingCol: string | null;
  minRating: number | null;
  kCore: number;
  split: "loo" | "temporal";
  /** A registered objective (src/loss/objectives.ts). */
  loss: string;
  negatives: number;
  filterEps: number;
  sampler: SamplerKind;
  alpha: number;
  logQ: boolean;
  gbceT: number;
  batchSize: number;
  /** Cut batches by real positions (0: by batchSize rows only). */
  tokensPerBatch: number;
  /** Compute padded [B, L] batches instead of packed real positions (slower; for comparison). */
  padded: boolean;
  seqLen: number;
  epochs: number;
  lr: number;
  weightDecay: number;
  clip: number;
  dim: number;
  blocks: number;
  heads: number;
  dropout: number;
  seed: number;
  patience: number;
  evalEvery: number;
  evalUsers: number;
  keepSeen: boolean;
  out: string;
  /** The run store: a postgres:// URL; null: `<out>/runs.sqlite`. */
  store: string | null;
  name: string | null;
  resume: string | null;
  memoryLimit: number | null;
  /** Measure the adapter's fastest kernels again instead of reading runs/cache. */
  retune: boolean;
  json: boolean;
  serve: boolean;
}

export const DEFAULTS: TrainConfig = {
  data: null,
  format: "auto",
  catalog: "small",
  userCol: null,
  itemCol: null,
  timeCol: null,
  ratingCol: null,
  minRating: null,
  kCore: 0,
  split: "loo",
  loss: "cce-",
  negatives: 256,
  filterEps: 0,
  sampler: "uniform",
  alpha: 1,
  logQ: false,
  gbceT: 0.75,
  batchSize: 128,
  tokensPerBatch: 0,
  padded: false,
  seqLen: 50,
  epochs: 10,
  lr: 1e-3,
  weightDecay: 0,
  clip: 0,
  dim: 64,
  blocks: 2,
  heads: 1,
  dropout: 0.3,
  seed: 0,
  patience: 5,
  evalEvery: 1,
  evalUsers: 0,
  keepSeen: false,
  out: "runs",
  store: null,
  name: null,
  resume: null,
  memoryLimit: null,
  retune: false,
  json: false,
  serve: false,
};

const FLAGS: Record<string, FlagSpec<keyof TrainConfig>> = {
  data: {
    key: "data",
    type: "string",
    help: "interaction CSV/TSV or sequence file",
    shown: "synthetic data",
  },
  format: { key: "format", type: "string", help: "file format", choices: ["auto", "csv", "seq"] },
  catalog: {
    key: "catalog",
    type: "string",
    help: "synthetic catalogue without --data: small|medium|large|<items>",
  },
  "user-col": {
    key: "userCol",
    type: "string",
    help: "CSV user column",
    shown: "detected (userId, user_id, …)",
  },
  "item-col": {
    key: "itemCol",
    type: "string",
    help: "CSV item column",
    shown: "detected (itemId, movieId, …)",
  },
  "time-col": {
    key: "timeCol",
    type: "string",
    help: "CSV timestamp column",
    shown: "detected (timestamp, time, …)",
  },
  "rating-col": {
    key: "ratingCol",
    type: "string",
    help: "CSV rating column",
    shown: "detected when present",
  },
  "min-rating": { key: "minRating", type: "number", help: "keep interactions rated at least this" },
  "k-core": {
    key: "kCore",
    type: "number",
    help: "keep users and items with ≥ k interactions (0: off)",
  },
  split: {
    key: "split",
    type: "string",
    help: "leave-one-out or global temporal split",
    choices: ["loo", "temporal"],
  },
  loss: {
    key: "loss",
    type: "string",
    help: "training objective: " +
      OBJECTIVE_NAMES.map((n) => `${n} ${objectiveOf(n).help}`).join("; "),
    choices: OBJECTIVE_NAMES,
  },
  negatives: {
    key: "negatives",
    type: "number",
    help: "negatives per position (cce-, ce-, gbce; bce uses 1)",
  },
  "filter-eps": {
    key: "filterEps",
    type: "number",
    help: "cce: skip backward tiles whose |softmax − onehot| are all below this (0: exact)",
  },
  sampler: {
    key: "sampler",
    type: "string",
    help: "negatives: uniform per position, shared by the batch, or ∝ count^alpha",
    choices: SAMPLER_KINDS,
  },
  alpha: { key: "alpha", type: "number", help: "popularity sampler exponent" },
  "log-q": {
    key: "logQ",
    type: "boolean",
    help: "logQ correction of sampled logits: −log(K·q) of the sampler's own q",
  },
  "gbce-t": { key: "gbceT", type: "number", help: "gBCE calibration parameter t" },
  "batch-size": { key: "batchSize", type: "number", help: "sequences per step" },
  "tokens-per-batch": {
    key: "tokensPerBatch",
    type: "number",
    help:
      "cut batches by real positions instead (≥ --seq-len; --batch-size still caps rows; 0: off)",
  },
  padded: {
    key: "padded",
    type: "boolean",
    help: "compute left-padded [B, L] batches, not packed real positions (slower; for comparison)",
  },
  "seq-len": { key: "seqLen", type: "number", help: "maximum sequence length L (left padding)" },
  epochs: { key: "epochs", type: "number", help: "maximum epochs" },
  lr: { key: "lr", type: "number", help: "Adam learning rate" },
  "weight-decay": {
    key: "weightDecay",
    type: "number",
    help: "AdamW weight decay (0: plain Adam)",
  },
  clip: { key: "clip", type: "number", help: "clip the global gradient norm to this (0: off)" },
  dim: { key: "dim", type: "number", help: "embedding and hidden size d" },
  blocks: { key: "blocks", type: "number", help: "transformer blocks" },
  heads: { key: "heads", type: "number", help: "attention heads" },
  dropout: { key: "dropout", type: "number", help: "dropout probability" },
  seed: {
    key: "seed",
    type: "number",
    help: "seed of initialisation, batches, negatives and dropout",
  },
  patience: {
    key: "patience",
    type: "number",
    help: "stop after this many evaluations without a better valid NDCG@10",
  },
  "eval-every": { key: "evalEvery", type: "number", help: "evaluate on validation every N epochs" },
  "eval-users": {
    key: "evalUsers",
    type: "number",
    help: "evaluate a fixed random subset of N users (0: every user is tested; each epoch " +
      "validates on all users, or on a fixed sample of 2·10⁹/C users when C items make that slow)",
  },
  "keep-seen": {
    key: "keepSeen",
    type: "boolean",
    help: "rank items already in the user's history too",
  },
  out: { key: "out", type: "string", help: "runs folder (run store and checkpoints)" },
  store: STORE_FLAG,
  name: { key: "name", type: "string", help: "run name", shown: "<dataset>-<loss>" },
  resume: { key: "resume", type: "string", help: "run id to resume from its last checkpoint" },
  "memory-limit": {
    key: "memoryLimit",
    type: "string",
    help: "GPU memory budget, e.g. 2GiB",
    shown: "75% of RAM on a software adapter, 8GiB on a GPU",
    bytes: true,
  },
  retune: {
    key: "retune",
    type: "boolean",
    help: "time the matmul variants on this adapter again (the choice is cached in <out>/cache)",
  },
  json: { key: "json", type: "boolean", help: "log one JSON object per line" },
  serve: {
    key: "serve",
    type: "boolean",
    help:
      "serve the dashboard beside the run (http://127.0.0.1:8787/, or a free port) and print its URL",
  },
};

/** Parses argv into a full config; unknown flags and bad values are ConfigErrors. */
export function parseTrainArgs(args: string[], extra: Record<string, FlagSpec> = {}): {
  config: TrainConfig;
  help: boolean;
  rest: Record<string, string | boolean | undefined>;
  /** The config keys the arguments set (the others hold defaults). */
  given: Set<keyof TrainConfig>;
} {
  const { config, given, help, rest } = parseFlags(args, FLAGS, DEFAULTS, extra);
  if (given.has("data") && given.has("catalog")) {
    throw new ConfigError(
      "--data and --catalog both name the training data: give --data FILE for a file or " +
        "--catalog small|medium|large|<items> for synthetic data, not both",
    );
  }
  return { config: validate(config), help, rest, given };
}

function validate(c: TrainConfig): TrainConfig {
  requireWholeNumbers(FLAGS, c, [
    "negatives",
    "batchSize",
    "seqLen",
    "epochs",
    "dim",
    "blocks",
    "heads",
    "patience",
    "evalEvery",
  ], 1);
  if (!(c.filterEps >= 0 && c.filterEps < 1)) {
    throw new ConfigError(`--filter-eps must be in [0, 1), got ${c.filterEps}`);
  }
  if (
    !Number.isInteger(c.tokensPerBatch) || (c.tokensPerBatch !== 0 && c.tokensPerBatch < c.seqLen)
  ) {
    throw new ConfigError(
      `--tokens-per-batch must be 0 (off) or a whole number ≥ --seq-len ${c.seqLen}, got ${c.tokensPerBatch}`,
    );
  }
  requireWholeNumbers(FLAGS, c, ["kCore", "evalUsers", "seed"], 0);
  if (!(c.lr > 0)) throw new ConfigError(`--lr must be > 0, got ${c.lr}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) {
    throw new ConfigError(`--dropout must be in [0, 1), got ${c.dropout}`);
  }
  try {
    parseCatalog(c.catalog);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (c.dim % c.heads !== 0) {
    throw new ConfigError(`--dim ${c.dim} is not divisible by --heads ${c.heads}`);
  }
  if (!(c.weightDecay >= 0) || !(c.clip >= 0)) {
    throw new ConfigError("--weight-decay and --clip must be ≥ 0");
  }
  checkStore(c.store);
  return c;
}

/** What the run's objective reads from its configuration. */
export function objectiveSettings(c: TrainConfig): ObjectiveSettings {
  return {
    negatives: c.negatives,
    sampler: c.sampler,
    logQ: c.logQ,
    gbceT: c.gbceT,
    filterEps: c.filterEps,
  };
}

/** Settings a resumed run may change (they are recorded); everything else must match. */
export const RESUME_MAY_CHANGE: readonly (keyof TrainConfig)[] = [
  "epochs",
  "patience",
  "evalEvery",
];

/**
 * The configuration a resumed run continues with: the stored one, with the `given` flags that
 * may change on resume and the runtime flags applied; see mergeResume.
 */
export function resumeConfig(
  stored: Record<string, unknown>,
  requested: TrainConfig,
  given: Iterable<keyof TrainConfig>,
): TrainConfig {
  return validate(mergeResume(
    FLAGS,
    DEFAULTS,
    {
      mayChange: RESUME_MAY_CHANGE,
      // How to run, not what is trained.
      runtimeOnly: ["out", "store", "resume", "json", "serve", "memoryLimit", "retune"],
    },
    stored,
    requested,
    given,
  ));
}

/** --help text: every flag with its default. */
export function trainHelp(command = "deno task train", intro = ""): string {
  return [
    `Usage: ${command} [flags]`,
    ...(intro ? ["", intro] : []),
    "",
    ...flagsHelp(FLAGS, DEFAULTS),
  ]
    .join("\n");
}

export { ConfigError };
