/**
 * Command-line flags of a training task: each flag names the config key it sets, its type and
 * help. One parser, one value converter and one resume merge serve every task's configuration
 * (the recommender's and the language model's).
 */
import { parseArgs } from "node:util";
import { parseBytes } from "../gpu/allocator.ts";
import { isPostgresUrl } from "../store/open.ts";

export interface FlagSpec<K extends string = string> {
  key: K;
  type: "string" | "number" | "boolean";
  help: string;
  choices?: readonly string[];
  /** How --help shows the default when it is not the value itself. */
  shown?: string;
  /** A byte count written with units (2GiB). */
  bytes?: boolean;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export interface ParsedFlags<C> {
  /** Defaults with the given flags applied (not yet validated). */
  config: C;
  /** The config keys the arguments set. */
  given: Set<keyof C>;
  help: boolean;
  /** Values of `extra` flags, by flag name. */
  rest: Record<string, string | boolean | undefined>;
}

/** Parses `args` against `flags` (and `extra`, returned by name); bad input is a ConfigError. */
export function parseFlags<C extends object>(
  args: string[],
  flags: Record<string, FlagSpec<Extract<keyof C, string>>>,
  defaults: C,
  extra: Record<string, FlagSpec> = {},
): ParsedFlags<C> {
  const specs: Record<string, FlagSpec> = { ...flags, ...extra };
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [flag, spec] of Object.entries(specs)) {
    options[flag] = { type: spec.type === "boolean" ? "boolean" : "string" };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: attachNegativeValues(args, options),
      options,
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const config = { ...defaults } as Record<string, unknown>;
  const rest: Record<string, string | boolean | undefined> = {};
  const given = new Set<keyof C>();
  for (const [flag, raw] of Object.entries(values)) {
    if (flag === "help" || raw === undefined) continue;
    if (!(flag in flags)) {
      rest[flag] = raw;
      continue;
    }
    const spec = flags[flag];
    config[spec.key] = convert(flag, spec, raw);
    given.add(spec.key as keyof C);
  }
  return { config: config as C, given, help: values.help === true, rest };
}

/**
 * `--lr -1` as `--lr=-1`: a value flag followed by a negative number takes it as its value, so
 * the range check names the flag instead of the parser calling the value ambiguous.
 */
function attachNegativeValues(
  args: string[],
  options: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const flag = /^--([a-z][a-z0-9-]*)$/.exec(args[i])?.[1];
    const next = args[i + 1];
    if (flag && options[flag]?.type === "string" && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

function convert(flag: string, spec: FlagSpec, raw: string | boolean): unknown {
  if (spec.type === "boolean") return raw;
  const text = String(raw);
  if (spec.choices && !spec.choices.includes(text)) {
    throw new ConfigError(`--${flag}: "${text}" is not one of ${spec.choices.join(", ")}`);
  }
  if (spec.bytes) {
    try {
      return parseBytes(text);
    } catch (e) {
      throw new ConfigError(`--${flag}: ${(e as Error).message}`);
    }
  }
  if (spec.type === "number") {
    const v = Number(text);
    if (text.trim() === "" || !Number.isFinite(v)) {
      throw new ConfigError(`--${flag}: "${text}" is not a number`);
    }
    return v;
  }
  return text;
}

/** The flag that sets `key`. */
export function flagOf<K extends string>(flags: Record<string, FlagSpec<K>>, key: K): string {
  return Object.entries(flags).find(([, s]) => s.key === key)?.[0] ?? key;
}

/** What a task allows to differ when a run is resumed. */
export interface ResumeRules<K extends string> {
  /** Settings a resumed run may change (they are recorded). */
  mayChange: readonly K[];
  /** How to run, not what is trained: taken from the request, never a difference. */
  runtimeOnly: readonly K[];
}

/**
 * The configuration a resumed run continues with: the stored one (over the defaults), with the
 * `given` flags that may change on resume and the runtime flags applied. A given flag that
 * contradicts the stored configuration is refused, listing every difference.
 */
export function mergeResume<C extends object>(
  flags: Record<string, FlagSpec<Extract<keyof C, string>>>,
  defaults: C,
  rules: ResumeRules<Extract<keyof C, string>>,
  stored: Record<string, unknown>,
  requested: C & { resume: string | null },
  given: Iterable<keyof C>,
): C {
  type K = Extract<keyof C, string>;
  const base = { ...defaults, ...stored } as Record<string, unknown>;
  const req = requested as unknown as Record<string, unknown>;
  const differences: string[] = [];
  for (const key of given as Iterable<K>) {
    if (rules.runtimeOnly.includes(key) || rules.mayChange.includes(key)) {
      base[key] = req[key];
    } else if (JSON.stringify(base[key]) !== JSON.stringify(req[key])) {
      differences.push(
        `--${flagOf(flags, key)} ${JSON.stringify(req[key])} (the run has ${
          JSON.stringify(base[key])
        })`,
      );
    }
  }
  for (const key of rules.runtimeOnly) base[key] = req[key];
  if (differences.length) {
    throw new ConfigError(
      `--resume ${requested.resume}: these flags contradict the run's stored configuration: ` +
        `${differences.join("; ")}. Only ${
          rules.mayChange.map((k) => `--${flagOf(flags, k)}`).join(", ")
        } may change on resume`,
    );
  }
  return base as C;
}

/** A task's --help lines for its flags: each with its help, choices and default, then --help. */
export function flagsHelp<C extends object>(
  flags: Record<string, FlagSpec<Extract<keyof C, string>>>,
  defaults: C,
): string[] {
  const width = Math.max(...Object.keys(flags).map((f) => f.length)) + 1;
  const lines = ["Flags:"];
  for (const [flag, spec] of Object.entries(flags)) {
    const def = defaults[spec.key];
    const shown = spec.shown ?? (def === null ? "none" : String(def));
    const choices = spec.choices ? ` (${spec.choices.join("|")})` : "";
    lines.push(`  --${flag.padEnd(width)} ${spec.help}${choices} [default: ${shown}]`);
  }
  lines.push(`  --${"help".padEnd(width)} print this help`);
  return lines;
}

/** Refuses any of `keys` that is not a whole number ≥ `min`, naming its flag. */
export function requireWholeNumbers<C extends object>(
  flags: Record<string, FlagSpec<Extract<keyof C, string>>>,
  config: C,
  keys: readonly Extract<keyof C, string>[],
  min: number,
): void {
  for (const key of keys) {
    const v = config[key];
    if (!Number.isInteger(v) || (v as number) < min) {
      throw new ConfigError(`--${flagOf(flags, key)} must be a whole number ≥ ${min}, got ${v}`);
    }
  }
}

/** --store as every training task takes it: a PostgreSQL URL, or none for <out>/runs.sqlite. */
export const STORE_FLAG: FlagSpec<"store"> = {
  key: "store",
  type: "string",
  help: "run store shared by many machines: postgres://USER@HOST:PORT/DB",
  shown: "<out>/runs.sqlite",
};

/** Refuses a --store that is not a PostgreSQL URL. */
export function checkStore(store: string | null): void {
  if (store !== null && !isPostgresUrl(store)) {
    throw new ConfigError(
      `--store must be postgres://USER@HOST:PORT/DB (without it: <out>/runs.sqlite), got "${store}"`,
    );
  }
}
