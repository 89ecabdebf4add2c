/**
 * The sweep command line: sweep flags, training flags whose values may be comma-separated lists
 * or, for a random search, ranges; the trials they give (a grid, or random points), canonical
 * trial keys and the deterministic sweep id.
 */
import { resolve } from "node:path";
import {
  ConfigError,
  DEFAULTS,
  parseTrainArgs,
  type TrainConfig,
  trainHelp,
} from "../train/config.ts";
import { parseBytes } from "../gpu/allocator.ts";
import { isPostgresUrl } from "../store/open.ts";
import { type Dimension, parseRange, type Range, samplePoints } from "./search.ts";

/** A bad sweep command line (the whole command is refused, nothing starts). */
export class SweepArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SweepArgsError";
  }
}

export type ParamValue = string | number | boolean;

/** A training flag as the sweep sees it. */
export interface TrainFlag {
  flag: string;
  key: keyof TrainConfig;
  kind: "boolean" | "number" | "string";
}

/** One value of a training flag: the text as given (what the trial's argv gets) and its type. */
export interface FlagValue {
  raw: string;
  value: ParamValue;
}

export interface FixedFlag extends TrainFlag, FlagValue {}

export interface Axis extends TrainFlag {
  values: FlagValue[];
}

/** A numeric training flag given a range (`--lr 1e-4..1e-2:log`): a random search samples it. */
export interface RangeAxis extends TrainFlag {
  /** The range as given. */
  raw: string;
  range: Range;
}

/** grid: every combination; random: `--trials` points; asha: either, stopped early at rungs. */
export type SearchMode = "grid" | "random" | "asha";

export interface SweepCommand {
  /** Training flags given a list of two or more values, in command-line order. */
  axes: Axis[];
  /** Training flags with a single value, in command-line order. */
  fixed: FixedFlag[];
  /** Training flags given a range, in command-line order. */
  ranges: RangeAxis[];
  search: SearchMode;
  /** --trials: how many random points; null: the grid. */
  trials: number | null;
  /** --search-seed: the random points drawn. */
  searchSeed: number;
  /** ASHA's reduction factor and first rung. */
  eta: number;
  minEpochs: number;
  /** --queue: the Redis URL whose workers run the trials; null: trials run here. */
  queue: string | null;
  /** --attempts: runs a queued trial gets before it is recorded as failed. */
  attempts: number;
  /** --memory-budget in bytes; null: the device limit. */
  budget: number | null;
  parallel: number;
  json: boolean;
  exportPath: string | null;
  name: string | null;
  out: string;
  /** --store: the PostgreSQL run store (postgres://…); null: `<out>/runs.sqlite`. */
  store: string | null;
  help: boolean;
}

export interface Trial {
  /** Canonical key: `flag=value` of every axis, sorted by flag and joined by commas. */
  key: string;
  /** Config key → value of every axis (the `params` column). */
  params: Record<string, ParamValue>;
  /** The trial's training flags (fixed flags, then its axis values), without the sweep's own. */
  argv: string[];
}

/** Sweep flags: name → takes a value. `--out`, `--name` and `--json` mean the sweep's own. */
const SWEEP_FLAGS: Record<string, boolean> = {
  "memory-budget": true,
  parallel: true,
  search: true,
  trials: true,
  "search-seed": true,
  eta: true,
  "min-epochs": true,
  queue: true,
  attempts: true,
  export: true,
  name: true,
  out: true,
  store: true,
  json: false,
  help: false,
};

/** Training flags a sweep sets on every trial itself, with the reason shown when given. */
const REFUSED: Record<string, string> = {
  "memory-limit": "a sweep sets it on every trial from --memory-budget",
  resume: "a sweep resumes by rerunning the same command",
};

export const SWEEP_DEFAULTS = {
  parallel: 1,
  out: "runs",
  search: "grid",
  searchSeed: 0,
  eta: 3,
  minEpochs: 1,
  attempts: 2,
} as const;

const SEARCH_MODES: SearchMode[] = ["grid", "random", "asha"];

let trainFlagTable: Map<string, TrainFlag> | null = null;

/**
 * The training flags, read from `trainHelp()` (it lists every flag `parseTrainArgs` accepts), so a
 * flag added to the trainer is sweepable without a change here. Types come from the real parser.
 */
export function trainFlags(): Map<string, TrainFlag> {
  if (trainFlagTable) return trainFlagTable;
  const table = new Map<string, TrainFlag>();
  for (const [, flag] of trainHelp().matchAll(/^ {2}--([a-z][a-z0-9-]*)/gm)) {
    if (flag === "help") continue;
    const key = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof TrainConfig;
    if (!(key in DEFAULTS)) {
      throw new Error(`internal: training flag --${flag} has no config field "${key}"`);
    }
    table.set(flag, { flag, key, kind: flagKind(flag, key) });
  }
  trainFlagTable = table;
  return table;
}

/** Boolean from the default; numeric when the parser turns "1" (or "0") into a number. */
function flagKind(flag: string, key: keyof TrainConfig): TrainFlag["kind"] {
  if (typeof DEFAULTS[key] === "boolean") return "boolean";
  for (const probe of ["1", "0"]) {
    try {
      return typeof parseTrainArgs([`--${flag}`, probe]).config[key] === "number"
        ? "number"
        : "string";
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
    }
  }
  return "string";
}

/** camelCase config key → its flag, e.g. batchSize → batch-size. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function typed(f: TrainFlag, raw: string): ParamValue {
  if (f.kind === "boolean") return raw === "true";
  if (f.kind === "number") {
    const n = Number(raw);
    // A value that is not a number stays text: the trial fails with the parser's message.
    return raw.trim() !== "" && Number.isFinite(n) ? n : raw;
  }
  return raw;
}

function show(v: ParamValue): string {
  return String(v);
}

const BOOL_LIST = /^(true|false)(,(true|false))*$/;

/** Parses `deno task sweep` argv. Unknown flags, repeats and malformed lists are SweepArgsErrors. */
export function parseSweepArgs(args: string[]): SweepCommand {
  const train = trainFlags();
  const sweep: Record<string, string | boolean> = {};
  const given: { f: TrainFlag; raws: string[] }[] = [];
  const ranges: RangeAxis[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const token = args[i];
    if (!token.startsWith("--") || token === "--") {
      throw new SweepArgsError(`unexpected argument "${token}" (flags start with --)`);
    }
    const eq = token.indexOf("=");
    const flag = eq < 0 ? token.slice(2) : token.slice(2, eq);
    let inline: string | undefined = eq < 0 ? undefined : token.slice(eq + 1);
    if (seen.has(flag)) throw new SweepArgsError(`--${flag} is given twice`);
    seen.add(flag);
    if (flag in REFUSED) {
      throw new SweepArgsError(`--${flag} is not a sweep flag: ${REFUSED[flag]}`);
    }
    const f = train.get(flag);
    const takesValue = flag in SWEEP_FLAGS ? SWEEP_FLAGS[flag] : f ? f.kind !== "boolean" : null;
    if (takesValue === null) {
      throw new SweepArgsError(`unknown flag --${flag} (see deno task sweep --help)`);
    }
    if (takesValue) {
      if (inline === undefined) {
        const next = args[i + 1];
        if (next === undefined || next.startsWith("--")) {
          throw new SweepArgsError(`--${flag} needs a value`);
        }
        inline = next;
        i++;
      }
    } else if (inline === undefined && f && BOOL_LIST.test(args[i + 1] ?? "")) {
      // A boolean training flag may take true/false values, so that it can be a grid axis.
      inline = args[++i];
    }
    if (flag in SWEEP_FLAGS) {
      if (!SWEEP_FLAGS[flag] && inline !== undefined) {
        throw new SweepArgsError(`--${flag} takes no value`);
      }
      sweep[flag] = inline ?? true;
      continue;
    }
    const text = inline ?? "true";
    if (f!.kind === "boolean" && !BOOL_LIST.test(text)) {
      throw new SweepArgsError(`--${flag}: "${text}" is not true, false or a list of them`);
    }
    const range = f!.kind === "number" ? rangeOf(f!.flag, text) : null;
    if (range) {
      ranges.push({ ...f!, raw: text, range });
      continue;
    }
    const raws = text.split(",").map((s) => s.trim());
    if (raws.some((s) => s === "")) {
      throw new SweepArgsError(`--${flag}: empty value in the list "${text}"`);
    }
    given.push({ f: f!, raws: f!.key === "data" ? raws.map((p) => resolve(p)) : raws });
  }

  const axes: Axis[] = [];
  const fixed: FixedFlag[] = [];
  for (const { f, raws } of given) {
    const values = raws.map((raw) => ({ raw, value: typed(f, raw) }));
    const shown = new Set<string>();
    for (const v of values) {
      if (shown.has(show(v.value))) {
        throw new SweepArgsError(`--${f.flag}: ${show(v.value)} is listed twice`);
      }
      shown.add(show(v.value));
    }
    if (values.length === 1) fixed.push({ ...f, ...values[0] });
    else axes.push({ ...f, values });
  }

  let budget: number | null = null;
  if (typeof sweep["memory-budget"] === "string") {
    try {
      budget = parseBytes(sweep["memory-budget"]);
    } catch (e) {
      throw new SweepArgsError(`--memory-budget: ${(e as Error).message}`);
    }
    if (budget <= 0) throw new SweepArgsError("--memory-budget must be more than 0 bytes");
  }
  const count = (flag: string, min: number, def: number | null) => {
    const text = sweep[flag];
    if (typeof text !== "string") return def;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) {
      throw new SweepArgsError(`--${flag} must be a whole number ≥ ${min}, got "${text}"`);
    }
    return n;
  };
  const search = (sweep.search ?? SWEEP_DEFAULTS.search) as SearchMode;
  if (!SEARCH_MODES.includes(search)) {
    throw new SweepArgsError(
      `--search: "${sweep.search}" is not a search (allowed: ${SEARCH_MODES.join(", ")})`,
    );
  }
  const trials = count("trials", 1, null);
  if (trials !== null && search === "grid") {
    throw new SweepArgsError("--trials is for --search random or asha (a grid runs every point)");
  }
  if (search === "random" && trials === null) {
    throw new SweepArgsError("--search random needs --trials N (how many points to draw)");
  }
  if (ranges.length && trials === null) {
    const r = ranges[0];
    throw new SweepArgsError(
      `--${r.flag} ${r.raw} is a range: ranges are sampled by --search random or asha with ` +
        "--trials N (a grid takes comma-separated values)",
    );
  }
  for (const flag of ["eta", "min-epochs"]) {
    if (sweep[flag] !== undefined && search !== "asha") {
      throw new SweepArgsError(`--${flag} is for --search asha`);
    }
  }
  const queue = typeof sweep.queue === "string" ? sweep.queue : null;
  if (queue !== null && sweep.parallel !== undefined) {
    throw new SweepArgsError(
      "--parallel is for trials run here: with --queue each worker's --concurrency decides",
    );
  }
  const store = typeof sweep.store === "string" ? sweep.store : null;
  if (store !== null && !isPostgresUrl(store)) {
    throw new SweepArgsError(
      `--store must be postgres://USER@HOST:PORT/DB (without it: <out>/runs.sqlite), got "${store}"`,
    );
  }
  if (queue === null && sweep.attempts !== undefined) {
    throw new SweepArgsError(
      "--attempts is for --queue (a local sweep runs a trial once; rerunning it retries failures)",
    );
  }
  return {
    axes,
    fixed,
    ranges,
    search,
    trials,
    searchSeed: count("search-seed", 0, SWEEP_DEFAULTS.searchSeed)!,
    eta: count("eta", 2, SWEEP_DEFAULTS.eta)!,
    minEpochs: count("min-epochs", 1, SWEEP_DEFAULTS.minEpochs)!,
    queue,
    attempts: count("attempts", 1, SWEEP_DEFAULTS.attempts)!,
    budget,
    parallel: count("parallel", 1, SWEEP_DEFAULTS.parallel)!,
    json: sweep.json === true,
    exportPath: typeof sweep.export === "string" ? sweep.export : null,
    name: typeof sweep.name === "string" ? sweep.name : null,
    out: typeof sweep.out === "string" ? sweep.out : SWEEP_DEFAULTS.out,
    store,
    help: sweep.help === true,
  };
}

/** A flag's range, or null when its value is no range; a malformed range names the flag. */
function rangeOf(flag: string, text: string): Range | null {
  try {
    return parseRange(text);
  } catch (e) {
    throw new SweepArgsError(`--${flag}: ${(e as Error).message}`);
  }
}

/** The flags a value contributes to a trial's argv (a false boolean is the flag left out). */
function argvOf(f: TrainFlag, v: FlagValue): string[] {
  if (f.kind === "boolean") return v.value === true ? [`--${f.flag}`] : [];
  return [`--${f.flag}`, v.raw];
}

/** Canonical trial key of axis values. */
export function trialKey(values: { flag: string; value: ParamValue }[]): string {
  return [...values].sort((a, b) => (a.flag < b.flag ? -1 : a.flag > b.flag ? 1 : 0))
    .map((v) => `${v.flag}=${show(v.value)}`)
    .join(",");
}

/** Every trial of the grid: the cross product of the axes, the first axis outermost. */
export function expandGrid(cmd: SweepCommand): Trial[] {
  const base = cmd.fixed.flatMap((f) => argvOf(f, f));
  let combos: FlagValue[][] = [[]];
  for (const axis of cmd.axes) {
    combos = combos.flatMap((prefix) => axis.values.map((v) => [...prefix, v]));
  }
  return combos.map((combo) => {
    const params: Record<string, ParamValue> = {};
    const argv = [...base];
    cmd.axes.forEach((axis, i) => {
      params[axis.key] = combo[i].value;
      argv.push(...argvOf(axis, combo[i]));
    });
    const key = trialKey(cmd.axes.map((axis, i) => ({ flag: axis.flag, value: combo[i].value })));
    return { key, params, argv };
  });
}

/**
 * `--trials` random points: each list flag's value drawn from its list, each range flag's from its
 * range, all distinct, the same ones for the same command and --search-seed.
 */
export function sampleTrials(cmd: SweepCommand): Trial[] {
  const base = cmd.fixed.flatMap((f) => argvOf(f, f));
  const flags: TrainFlag[] = [...cmd.axes, ...cmd.ranges];
  const dims: Dimension<FlagValue>[] = [
    ...cmd.axes.map((a) => ({ choices: a.values })),
    ...cmd.ranges.map((r) => ({ range: r.range })),
  ];
  const asValue = (v: FlagValue | number): FlagValue =>
    typeof v === "number" ? { raw: String(v), value: v } : v;
  const keyOf = (point: FlagValue[]) =>
    trialKey(point.map((v, i) => ({ flag: flags[i].flag, value: v.value })));
  let points;
  try {
    points = samplePoints(dims, cmd.trials!, cmd.searchSeed, (p) => keyOf(p.map(asValue)));
  } catch (e) {
    throw new SweepArgsError((e as Error).message);
  }
  return points.map((p) => {
    const point = p.map(asValue);
    const params: Record<string, ParamValue> = {};
    const argv = [...base];
    flags.forEach((f, i) => {
      params[f.key] = point[i].value;
      argv.push(...argvOf(f, point[i]));
    });
    return { key: keyOf(point), params, argv };
  });
}

/** The sweep's trials: random points with --trials, else the grid. */
export function planTrials(cmd: SweepCommand): Trial[] {
  return cmd.trials === null ? expandGrid(cmd) : sampleTrials(cmd);
}

/**
 * The `grid` column: config key → values, in command-line order. For random points, the values
 * drawn (sorted), so that a table or heatmap of the trials has its axes.
 */
export function gridOf(cmd: SweepCommand, trials: Trial[]): Record<string, ParamValue[]> {
  if (cmd.trials === null) {
    return Object.fromEntries(cmd.axes.map((a) => [a.key, a.values.map((v) => v.value)]));
  }
  return Object.fromEntries(
    [...cmd.axes, ...cmd.ranges].map((f) => {
      const values = [...new Set(trials.map((t) => t.params[f.key]))];
      return [f.key, values.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))];
    }),
  );
}

/** The `args` column: config key → value of every single-valued training flag. */
export function argsOf(cmd: SweepCommand): Record<string, ParamValue> {
  return Object.fromEntries(cmd.fixed.map((f) => [f.key, f.value]));
}

/**
 * The sweep id: a hash of the fixed flags and the axes (values as a set), both sorted, so the same
 * command (in any flag order) names the same sweep and resumes it. --data is an absolute path by
 * now. Sweep-only flags (budget, parallelism, name, output) are not part of what is trained.
 */
export async function sweepId(cmd: SweepCommand): Promise<string> {
  const byFlag = <T extends { flag: string }>(xs: T[]) =>
    [...xs].sort((a, b) => (a.flag < b.flag ? -1 : 1));
  const canonical = JSON.stringify({
    fixed: byFlag(cmd.fixed).map((f) => [f.flag, f.value]),
    grid: byFlag(cmd.axes).map((a) => [a.flag, a.values.map((v) => show(v.value)).sort()]),
    // Only a search other than the grid adds itself, so a grid sweep keeps the id it always had.
    ...(cmd.search === "grid" ? {} : {
      search: {
        mode: cmd.search,
        trials: cmd.trials,
        seed: cmd.searchSeed,
        ranges: byFlag(cmd.ranges).map((r) => [r.flag, r.raw]),
        ...(cmd.search === "asha" ? { eta: cmd.eta, minEpochs: cmd.minEpochs } : {}),
      },
    }),
  });
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `sweep-${hex.slice(0, 12)}`;
}

/** A readable default name: the data set and the axes, e.g. "tiny.txt negatives×batch-size". */
export function defaultSweepName(cmd: SweepCommand): string {
  const data = cmd.fixed.find((f) => f.key === "data");
  const catalog = cmd.fixed.find((f) => f.key === "catalog");
  const label = data
    ? String(data.value).split("/").at(-1)
    : cmd.axes.some((a) => a.key === "data")
    ? "data"
    : `synthetic-${catalog?.value ?? DEFAULTS.catalog}`;
  const axes = [...cmd.axes, ...cmd.ranges].map((a) => a.flag).join("×");
  return axes ? `${label} ${axes}` : label!;
}

/** `--help` of the sweep flags, each with its default. */
export function sweepHelp(): string {
  const rows: [string, string, string][] = [
    [
      "memory-budget",
      "GPU memory per trial (e.g. 4GiB); trials estimated over it are not started",
      "the device limit",
    ],
    ["parallel", "trials run at once, each in its own process", String(SWEEP_DEFAULTS.parallel)],
    [
      "search",
      "grid (every combination), random (--trials points from lists and ranges such as " +
      "--lr 1e-4..1e-2:log) or asha (either, stopping the worst trials at rungs of epochs)",
      SWEEP_DEFAULTS.search,
    ],
    ["trials", "random points to train (--search random or asha)", "none: the grid"],
    ["search-seed", "seed of the random points", String(SWEEP_DEFAULTS.searchSeed)],
    [
      "eta",
      "asha: the top 1/eta of the trials at a rung go on; rungs at min-epochs × eta^k",
      String(SWEEP_DEFAULTS.eta),
    ],
    ["min-epochs", "asha: the first rung, in epochs", String(SWEEP_DEFAULTS.minEpochs)],
    [
      "queue",
      "redis://HOST:PORT[/DB]: enqueue the trials for `deno task worker` processes and follow them",
      "none: trials run here",
    ],
    [
      "attempts",
      "with --queue: runs of a failing trial before it is recorded as failed",
      String(SWEEP_DEFAULTS.attempts),
    ],
    ["json", "progress as JSON lines and the result as one JSON object", "false"],
    ["export", "also write every trial to this CSV file, e.g. trials.csv", "none"],
    ["name", "sweep name (trials' runs are named after it)", "<dataset> <axes>"],
    ["out", "runs folder: run store, checkpoints and the sweep", SWEEP_DEFAULTS.out],
    [
      "store",
      "postgres://USER@HOST:PORT/DB: the sweep, its trials and their runs go to this PostgreSQL " +
      "store (the one the workers' --store names)",
      "<out>/runs.sqlite",
    ],
    ["help", "print this help", "false"],
  ];
  return rows.map(([flag, help, def]) => `  --${flag.padEnd(14)} ${help} [default: ${def}]`)
    .join("\n");
}

/** The training flags' help lines a sweep accepts (train's own --out/--name/--json are the sweep's). */
export function sweepTrainHelp(): string {
  const own = new Set([...Object.keys(SWEEP_FLAGS), ...Object.keys(REFUSED)]);
  return trainHelp().split("\n")
    .filter((line) => {
      const m = /^ {2}--([a-z][a-z0-9-]*)/.exec(line);
      return m !== null && !own.has(m[1]);
    })
    .join("\n");
}
