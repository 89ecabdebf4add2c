/**
 * How the sampled losses ask for negatives: a NegativeSpec says how to draw them (kind, K, seed,
 * and for popularity the alias table), and every id is a pure function of (seed, position, slot)
 * from the counter-based generator. The fused losses draw them on the GPU where they score them
 * (shaders/negatives.wgsl); negativeId is the same draw on the host, bit for bit, for the
 * materialised losses and for tests. The samplers of src/data/samplers.ts produce these specs.
 *
 * Also here: each kind's logQ correction (what a negative adds to its logit, −log(K·q_id) for a
 * draw of probability q_id) and the buffers the kernels read the alias table and log q from.
 */
import negativesShader from "../../shaders/negatives.wgsl" with { type: "text" };
import fillShader from "../../shaders/negatives_fill.wgsl" with { type: "text" };
import type { Engine } from "../tensor/engine.ts";
import { declareKernel, groupsFor, rowWindows } from "../tensor/kernel.ts";
import { mulHi32, randomBits, randomInt, withRandom } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";

export type NegativeKind = "uniform" | "shared" | "popularity";

/**
 * Walker/Vose alias table over indices 0..n-1: draw column c uniformly, keep c with probability
 * `prob[c]`, else take `alias[c]`. O(1) per draw; a GPU kernel samples the same table with two
 * uniforms per draw.
 */
export interface AliasTable {
  prob: Float32Array;
  alias: Int32Array;
}

export interface NegativeSpec {
  kind: NegativeKind;
  /** Negatives per position (per batch when shared). */
  k: number;
  /** Ids are drawn from 1..items. */
  items: number;
  /** A u32, one per training step (the caller derives it). */
  seed: number;
  /**
   * Popularity: the alias table over indices 0..items-1 of ids 1..items. It is uploaded once per
   * engine and then reused, so it must not change after its first use.
   */
  alias?: AliasTable;
}

/** Counter stream of the negatives: keeps their draws apart from other users of a seed. */
export const NEGATIVE_STREAM = 0x4e454731;

/** The kinds as the kernels' `kind` parameter (negatives.wgsl). */
export const NEGATIVE_KIND_CODES: Record<NegativeKind, number> = {
  uniform: 0,
  shared: 1,
  popularity: 2,
};
const TWO_POW_MINUS_24 = 5.9604644775390625e-8;

/**
 * Checks a spec for draws at `positions` positions, naming `op`: k ≥ 1, a u32 seed, every counter
 * index below 2^32 and, for popularity, an alias table over exactly `items` columns.
 */
export function assertNegativeSpec(op: string, spec: NegativeSpec, positions: number): void {
  const { kind, k, items, seed } = spec;
  if (!(kind in NEGATIVE_KIND_CODES)) throw new RangeError(`${op}: unknown negative kind ${kind}`);
  if (!(Number.isInteger(k) && k >= 1)) throw new RangeError(`${op}: K must be ≥ 1, got ${k}`);
  if (!(Number.isInteger(items) && items >= 1 && items < 2 ** 31 - 1)) {
    throw new RangeError(`${op}: items must be in [1, 2^31 - 1), got ${items}`);
  }
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  const draws = kind === "shared" ? k : positions * k;
  if (draws > 2 ** 32) {
    throw new RangeError(
      `${op}: ${positions} positions × K=${k} negatives exceed the generator's 2^32 counters`,
    );
  }
  if (kind === "popularity") {
    const n = spec.alias?.prob.length;
    if (n !== items || spec.alias?.alias.length !== items) {
      throw new RangeError(
        `${op}: popularity negatives need an alias table over ${items} items, got ${n ?? "none"}`,
      );
    }
  }
}

/** The id (1..items) in `slot` of `position`: exactly what negative_id draws on the GPU. */
export function negativeId(spec: NegativeSpec, position: number, slot: number): number {
  const index = spec.kind === "shared" ? slot : position * spec.k + slot;
  if (!(index >= 0 && index < 2 ** 32)) {
    throw new RangeError(
      `negativeId: position ${position} slot ${slot} (K=${spec.k}) is counter ${index}, ` +
        "outside [0, 2^32)",
    );
  }
  if (spec.kind !== "popularity") {
    return randomInt(spec.seed, NEGATIVE_STREAM, index, 1, spec.items + 1);
  }
  const table = spec.alias;
  if (!table) throw new RangeError("negativeId: popularity negatives need an alias table");
  const [x, y] = randomBits(spec.seed, NEGATIVE_STREAM, index);
  const column = mulHi32(x, spec.items);
  const u = (y >>> 8) * TWO_POW_MINUS_24;
  return (u < table.prob[column] ? column : table.alias[column]) + 1;
}

/** Every negative of `positions` positions: [positions·k] row-major, or [k] when shared. */
export function drawNegatives(spec: NegativeSpec, positions: number): Int32Array {
  assertNegativeSpec("drawNegatives", spec, positions);
  if (spec.kind === "shared") {
    return Int32Array.from({ length: spec.k }, (_, slot) => negativeId(spec, 0, slot));
  }
  const out = new Int32Array(positions * spec.k);
  for (let n = 0; n < positions; n++) {
    for (let slot = 0; slot < spec.k; slot++) out[n * spec.k + slot] = negativeId(spec, n, slot);
  }
  return out;
}

/** The probability of each index that a table draws (equal to its normalised weights). */
export function aliasProbabilities(table: AliasTable): Float64Array {
  const n = table.prob.length;
  const p = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    p[c] += table.prob[c] / n;
    p[table.alias[c]] += (1 - table.prob[c]) / n;
  }
  return p;
}

/**
 * The logQ correction of a sampler's negatives (sampled softmax's bias correction): a negative
 * drawn with probability q_id gets −log(K·q_id) added to its logit, `shift − logProbabilities[id −
 * 1]` here. Uniform draws (shared or not) take q = 1/(C − 1), the chance of one particular other
 * item, so the shift log((C − 1)/K) is one constant.
 */
export interface LogQ {
  /** Added to every negative's logit. */
  shift: number;
  /** When q differs per id: log q_i of ids 1..items at index i − 1. */
  logProbabilities?: Float32Array;
}

/** The correction of uniform draws of K out of C items. */
export function uniformLogQ(items: number, k: number): LogQ {
  return { shift: Math.log(Math.max(items - 1, 1) / k) };
}

const logProbabilities = new WeakMap<AliasTable, Float32Array>();

/** The logQ correction of the draws `spec` describes (popularity: q_i from its alias table). */
export function logQOf(spec: NegativeSpec): LogQ {
  if (spec.kind !== "popularity") return uniformLogQ(spec.items, spec.k);
  const table = spec.alias;
  if (!table) throw new RangeError("logQ: popularity negatives need an alias table");
  let logQ = logProbabilities.get(table);
  if (!logQ) {
    logQ = Float32Array.from(aliasProbabilities(table), Math.log);
    logProbabilities.set(table, logQ);
  }
  return { shift: -Math.log(spec.k), logProbabilities: logQ };
}

/** What negative `id` adds to its logit under `logQ`. */
export function logQShift(logQ: LogQ, id: number): number {
  return logQ.logProbabilities ? logQ.shift - logQ.logProbabilities[id - 1] : logQ.shift;
}

/** A shader with random.wgsl and negatives.wgsl in front: it may call negative_id. */
export function withNegatives(shader: string): string {
  return withRandom(`${negativesShader}\n${shader}`);
}

/** The spec's fields of a kernel's uniform: kind, k, items, seed (negatives.wgsl). */
export function negativeParams(spec: NegativeSpec) {
  return { kind: NEGATIVE_KIND_CODES[spec.kind], k: spec.k, items: spec.items, seed: spec.seed };
}

const uploadedAlias = new WeakMap<AliasTable, WeakMap<Engine, Tensor>>();
const uploadedLogQ = new WeakMap<AliasTable, WeakMap<Engine, Tensor>>();
const placeholders = new WeakMap<Engine, Tensor>();

/**
 * The buffer for negative_id's binding `negative_alias`: the spec's alias table as u32
 * [items, 2] (keep-probability bits, alias), uploaded on first use and kept for the engine's life;
 * a one-cell placeholder for kinds that do not read it.
 */
export function negativeAliasBuffer(engine: Engine, spec: NegativeSpec): Tensor {
  const table = spec.alias;
  if (spec.kind !== "popularity" || !table) return placeholder(engine);
  assertFitsBinding(engine, table, 8);
  return cached(uploadedAlias, table, engine, () => packAlias(engine, table));
}

/**
 * The buffer for a kernel's per-id logQ correction: `logQ`'s log probabilities as f32 [items]
 * (popularity), uploaded once per alias table and kept like it; the placeholder when there is no
 * correction or it is one number.
 */
export function negativeLogQBuffer(engine: Engine, spec: NegativeSpec, logQ: LogQ | null): Tensor {
  const table = spec.alias;
  const logProbabilities = logQ?.logProbabilities;
  if (!table || !logProbabilities) return placeholder(engine);
  assertFitsBinding(engine, table, 4);
  return cached(
    uploadedLogQ,
    table,
    engine,
    () => engine.tensor(logProbabilities, [logProbabilities.length], "f32", "negative log q"),
  );
}

function assertFitsBinding(engine: Engine, table: AliasTable, bytesPerItem: number): void {
  const bytes = table.prob.length * bytesPerItem;
  if (bytes > engine.gpu.limits.maxStorageBufferBindingSize) {
    throw new RangeError(
      `popularity negatives: the alias table of ${table.prob.length} items (${bytes} bytes) ` +
        `exceeds one storage binding (${engine.gpu.limits.maxStorageBufferBindingSize} bytes)`,
    );
  }
}

function placeholder(engine: Engine): Tensor {
  let t = placeholders.get(engine);
  if (!t || t.isDisposed) {
    t = engine.tensor(new Uint32Array(2), [1, 2], "u32", "negatives placeholder");
    engine.keep(t);
    placeholders.set(engine, t);
  }
  return t;
}

function cached(
  uploads: WeakMap<AliasTable, WeakMap<Engine, Tensor>>,
  table: AliasTable,
  engine: Engine,
  make: () => Tensor,
): Tensor {
  let perEngine = uploads.get(table);
  if (!perEngine) uploads.set(table, perEngine = new WeakMap());
  let t = perEngine.get(engine);
  if (!t || t.isDisposed) {
    t = make();
    engine.keep(t);
    perEngine.set(engine, t);
  }
  return t;
}

function packAlias(engine: Engine, table: AliasTable): Tensor {
  const n = table.prob.length;
  const cells = new Uint32Array(2 * n);
  const probBits = new Uint32Array(table.prob.buffer, table.prob.byteOffset, n);
  for (let c = 0; c < n; c++) {
    cells[2 * c] = probBits[c];
    cells[2 * c + 1] = table.alias[c];
  }
  return engine.tensor(cells, [n, 2], "u32", "negative alias table");
}

const FILL_KERNEL = declareKernel({
  name: "draw negatives",
  source: withNegatives(fillShader),
  params: { n: "u32", first: "u32", kind: "u32", k: "u32", items: "u32", seed: "u32" },
  buffers: ["negative_alias", "ids"],
});

/**
 * The negatives the fused kernels draw for `positions` positions, drawn on the GPU: i32
 * [positions, k], or [k] when shared. For tests: the fused losses never store their negatives.
 */
export function drawNegativesGpu(engine: Engine, spec: NegativeSpec, positions: number): Tensor {
  assertNegativeSpec("drawNegativesGpu", spec, positions);
  const shape = spec.kind === "shared" ? [spec.k] : [positions, spec.k];
  const out = engine.empty(shape, "i32", "negatives");
  if (out.size === 0) return out;
  const alias = negativeAliasBuffer(engine, spec);
  for (const w of rowWindows(engine, out.size, 4)) {
    FILL_KERNEL.dispatch(engine.gpu, {
      params: { n: w.rows, first: w.row, ...negativeParams(spec) },
      buffers: {
        negative_alias: alias.storage,
        ids: { alloc: out.storage, offset: w.offset, size: w.size },
      },
      workgroups: groupsFor(engine, w.rows),
    });
  }
  return out;
}
