/** The configuration of event-sequence SSL training (`deno task ssl:train`): flags and checks. */
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
import { MAX_SYNTHETIC_CLIENTS } from "../data/event_synthetic.ts";
import { EVENT_OBJECTIVE_NAMES } from "../loss/event_objectives.ts";
import { MAX_HARD_NEGATIVES } from "../loss/pair_losses.ts";
import { GRU_MAX_HIDDEN } from "../tensor/ops/gru.ts";

export interface SslConfig {
  method: string;
  /** "synthetic" or a CSV/TSV transaction log. */
  data: string;
  /** Client targets (CSV with a header: client id, target); none for the synthetic data. */
  targets: string | null;
  clients: number;
  teacher: string | null;
  encoder: "gru" | "transformer";
  hidden: number;
  categoryDim: number;
  numericDim: number;
  layers: number;
  heads: number;
  contrastive: "margin" | "infonce";
  margin: number;
  hardNegatives: number;
  temperature: number;
  alignWeight: number;
  slices: number;
  minLen: number;
  maxLen: number;
  seqLen: number;
  batchClients: number;
  lr: number;
  epochs: number;
  evalEvery: number;
  patience: number;
  clip: number;
  seed: number;
  out: string;
  /** The run store: a postgres:// URL; null: `<out>/runs.sqlite`. */
  store: string | null;
  name: string | null;
  /** Continue this run from its last checkpoint. */
  resume: string | null;
  memoryLimit: number | null;
  json: boolean;
}

export const SSL_DEFAULTS: SslConfig = {
  method: "coles",
  data: "synthetic",
  targets: null,
  clients: 2000,
  teacher: null,
  encoder: "gru",
  hidden: 64,
  categoryDim: 16,
  numericDim: 16,
  layers: 1,
  heads: 2,
  contrastive: "margin",
  margin: 0.5,
  hardNegatives: 5,
  temperature: 0.1,
  alignWeight: 10,
  slices: 4,
  minLen: 12,
  maxLen: 40,
  seqLen: 64,
  batchClients: 64,
  lr: 0.002,
  epochs: 6,
  evalEvery: 1,
  patience: 3,
  clip: 1,
  seed: 1,
  out: "runs",
  store: null,
  name: null,
  resume: null,
  memoryLimit: null,
  json: false,
};

type Key = Extract<keyof SslConfig, string>;

export const SSL_FLAGS: Record<string, FlagSpec<Key>> = {
  method: { key: "method", type: "string", help: "objective", choices: EVENT_OBJECTIVE_NAMES },
  data: { key: "data", type: "string", help: "transaction log (CSV/TSV) or synthetic" },
  targets: { key: "targets", type: "string", help: "client targets CSV (client id, target)" },
  clients: {
    key: "clients",
    type: "number",
    help: `synthetic clients (up to ${MAX_SYNTHETIC_CLIENTS})`,
  },
  teacher: { key: "teacher", type: "string", help: "mlem: the CoLES run whose encoder is frozen" },
  encoder: {
    key: "encoder",
    type: "string",
    help: "sequence encoder",
    choices: ["gru", "transformer"],
  },
  hidden: { key: "hidden", type: "number", help: "embedding size (GRU units, transformer width)" },
  "category-dim": {
    key: "categoryDim",
    type: "number",
    help: "embedding size per categorical field",
  },
  "numeric-dim": {
    key: "numericDim",
    type: "number",
    help: "projection size of numerics and time gap",
  },
  layers: { key: "layers", type: "number", help: "transformer blocks" },
  heads: { key: "heads", type: "number", help: "transformer heads" },
  contrastive: {
    key: "contrastive",
    type: "string",
    help: "coles loss",
    choices: ["margin", "infonce"],
  },
  margin: { key: "margin", type: "number", help: "coles margin on distances of unit vectors" },
  "hard-negatives": {
    key: "hardNegatives",
    type: "number",
    help: `coles hard negatives per row (≤ ${MAX_HARD_NEGATIVES})`,
  },
  temperature: { key: "temperature", type: "number", help: "InfoNCE temperature" },
  "align-weight": { key: "alignWeight", type: "number", help: "mlem weight of the SigLIP term" },
  slices: { key: "slices", type: "number", help: "coles slices per client" },
  "min-len": { key: "minLen", type: "number", help: "coles shortest slice" },
  "max-len": { key: "maxLen", type: "number", help: "coles longest slice" },
  "seq-len": {
    key: "seqLen",
    type: "number",
    help: "events kept per client (last ones) otherwise",
  },
  "batch-clients": { key: "batchClients", type: "number", help: "clients per batch" },
  lr: { key: "lr", type: "number", help: "Adam learning rate" },
  epochs: { key: "epochs", type: "number", help: "epochs" },
  "eval-every": { key: "evalEvery", type: "number", help: "validate every N epochs" },
  patience: { key: "patience", type: "number", help: "evaluations without gain before stopping" },
  clip: { key: "clip", type: "number", help: "global gradient-norm clip (0: off)" },
  seed: { key: "seed", type: "number", help: "seed of data, splits, weights and batches" },
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
  json: { key: "json", type: "boolean", help: "one JSON object per line" },
};

function check(c: SslConfig): void {
  requireWholeNumbers(SSL_FLAGS, c, [
    "hidden",
    "categoryDim",
    "numericDim",
    "layers",
    "heads",
    "slices",
    "minLen",
    "maxLen",
    "seqLen",
    "batchClients",
    "epochs",
    "evalEvery",
    "patience",
    "clients",
    "hardNegatives",
  ], 1);
  requireWholeNumbers(SSL_FLAGS, c, ["seed"], 0);
  if (c.clients > MAX_SYNTHETIC_CLIENTS) {
    throw new ConfigError(`--clients must be ≤ ${MAX_SYNTHETIC_CLIENTS}, got ${c.clients}`);
  }
  if (c.hardNegatives > MAX_HARD_NEGATIVES) {
    throw new ConfigError(
      `--hard-negatives must be ≤ ${MAX_HARD_NEGATIVES} (the kernel keeps that many), got ${c.hardNegatives}`,
    );
  }
  for (const k of ["temperature", "lr"] as const) {
    if (!(c[k] > 0)) throw new ConfigError(`--${k} must be > 0, got ${c[k]}`);
  }
  for (const k of ["margin", "clip"] as const) {
    if (!(c[k] >= 0)) throw new ConfigError(`--${k} must be ≥ 0, got ${c[k]}`);
  }
  if (!(c.alignWeight >= 0)) {
    throw new ConfigError(`--align-weight must be ≥ 0, got ${c.alignWeight}`);
  }
  if (!EVENT_OBJECTIVE_NAMES.includes(c.method)) {
    throw new ConfigError(
      `--method: ${c.method} is not one of ${EVENT_OBJECTIVE_NAMES.join(", ")}`,
    );
  }
  if (c.method === "mlem" && !c.teacher) {
    throw new ConfigError("--method mlem needs --teacher RUN (a CoLES run)");
  }
  if (c.minLen > c.maxLen) {
    throw new ConfigError(`--min-len ${c.minLen} is over --max-len ${c.maxLen}`);
  }
  if (c.slices < 2 && c.method === "coles") {
    throw new ConfigError("--slices: coles needs at least 2");
  }
  if (c.encoder === "gru" && c.hidden > GRU_MAX_HIDDEN) {
    throw new ConfigError(
      `--hidden ${c.hidden}: the GRU kernels hold at most ${GRU_MAX_HIDDEN} units`,
    );
  }
  if (c.encoder === "transformer" && c.hidden % c.heads !== 0) {
    throw new ConfigError(`--hidden ${c.hidden} is not a multiple of --heads ${c.heads}`);
  }
  checkStore(c.store);
}

export interface ParsedSslArgs {
  config: SslConfig;
  /** The config keys the arguments set. */
  given: Set<keyof SslConfig>;
  help: boolean;
}

export function parseSslArgs(args: string[]): ParsedSslArgs {
  const { config, given, help } = parseFlags(args, SSL_FLAGS, SSL_DEFAULTS);
  if (!help) check(config);
  return { config, given, help };
}

/** Settings a resumed run may change (they are recorded); everything else must match. */
const RESUME_MAY_CHANGE: readonly Key[] = ["epochs", "patience", "evalEvery"];
/** How to run, not what is trained. */
const RUNTIME_ONLY: readonly Key[] = ["out", "store", "resume", "json", "memoryLimit"];

/**
 * The configuration a resumed run continues with: the stored one, with the given flags that may
 * change on resume and the runtime flags applied; see mergeResume.
 */
export function resumeSslConfig(
  stored: Record<string, unknown>,
  requested: SslConfig,
  given: Iterable<keyof SslConfig>,
): SslConfig {
  const merged = mergeResume(
    SSL_FLAGS,
    SSL_DEFAULTS,
    { mayChange: RESUME_MAY_CHANGE, runtimeOnly: RUNTIME_ONLY },
    stored,
    requested,
    given,
  );
  check(merged);
  return merged;
}

export function sslHelp(): string {
  const lines = [
    "Usage: deno task ssl:train [--method coles|generative|mlem] [--data FILE|synthetic] [flags]",
    "       deno task ssl:train --resume ID [--epochs N] [--out DIR] [--store URL]",
    "",
    "Trains an event-sequence encoder without labels (CoLES, generative, MLEM), then scores its",
    "frozen client embeddings with a logistic-regression probe, kNN and anisotropy against a",
    "random encoder, and writes them to the run folder (embeddings-clients.f32/.json). A",
    "configuration whose estimated peak GPU memory is over --memory-limit is refused first.",
    "",
    ...flagsHelp(SSL_FLAGS, SSL_DEFAULTS),
  ];
  return lines.join("\n");
}
