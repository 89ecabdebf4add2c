/**
 * GIFT-SW's effective weight as one op (methods.md §4): W [out, in] frozen, S [out, k] the
 * trainable salient columns. Forward writes W_eff = W with S in the salient columns and, while
 * training, (Δ_r/2)·ε added to every other element, ε ~ N(0, 1) drawn inside the kernel from the
 * counter-based generator keyed by (layer seed, step, element): no noise tensor exists, and the
 * same (seed, step) draws the same noise. Backward hands S the salient columns of dW_eff; W gets
 * nothing (it is frozen).
 */
import giftShader from "../../shaders/gift_noise.wgsl" with { type: "text" };
import type { Engine } from "../tensor/engine.ts";
import { assertDType, declareKernel, groupsFor } from "../tensor/kernel.ts";
import { assertCounterWord } from "../tensor/ops/random.ts";
import { randomBits, withRandom } from "../tensor/random.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";

const GIFT_KERNEL = declareKernel({
  name: "gift-sw compose",
  source: withRandom(giftShader),
  params: { rows: "u32", cols: "u32", k: "u32", seed: "u32", step: "u32", noise: "u32" },
  buffers: [
    "weight",
    "salient_values",
    "column_slot",
    "half_delta",
    "out",
    "salient_cols",
    "grad",
    "grad_salient",
  ],
});

const TWO_POW_MINUS_24 = 5.9604644775390625e-8;

/** The kernel's standard normal for (seed, stream, index): Box–Muller on one Philox draw. */
export function gaussianHost(seed: number, stream: number, index: number): number {
  const [x, y] = randomBits(seed, stream, index);
  const u1 = ((x >>> 8) + 1) * TWO_POW_MINUS_24;
  const u2 = (y >>> 8) * TWO_POW_MINUS_24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Where the salient columns are, on the GPU: slot[j] (S's column, or −1) and the column list. */
export interface SalientIndex {
  /** Sorted input columns, [k]. */
  columns: Int32Array;
  /** i32 [in]: slot of column j in S, −1 when j is not salient. */
  slot: Tensor;
  /** i32 [k]: the columns. */
  list: Tensor;
}

/** Uploads the index of `columns` (distinct, in [0, inF)) for a layer of width inF. */
export function salientIndex(e: Engine, columns: Int32Array, inF: number, name: string) {
  const slot = new Int32Array(inF).fill(-1);
  columns.forEach((c, q) => {
    if (!(Number.isInteger(c) && c >= 0 && c < inF) || slot[c] !== -1) {
      throw new RangeError(`${name}: salient column ${c} is out of [0, ${inF}) or repeated`);
    }
    slot[c] = q;
  });
  const index: SalientIndex = {
    columns,
    slot: e.tensor(slot, [inF], "i32", `${name} column slots`),
    list: e.tensor(columns, [columns.length], "i32", `${name} salient columns`),
  };
  e.keep(index.slot, index.list);
  return index;
}

/** Training noise: the layer's generator key and the step (the counter's stream word). */
export interface NoiseDraw {
  seed: number;
  step: number;
  /** Δ_r/2 per output row, [out]. */
  halfDelta: Tensor;
}

/** The float64 reference of compose: W_eff [out, in] for W, S [out, k], columns and noise. */
export function composeSalientHost(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  s: ArrayLike<number>,
  columns: ArrayLike<number>,
  noise: { seed: number; step: number; halfDelta: ArrayLike<number> } | null,
): Float64Array {
  const k = columns.length;
  const eff = Float64Array.from(w);
  if (noise) {
    for (let i = 0; i < out * inF; i++) {
      eff[i] += noise.halfDelta[Math.floor(i / inF)] * gaussianHost(noise.seed, noise.step, i);
    }
  }
  for (let r = 0; r < out; r++) {
    for (let q = 0; q < k; q++) eff[r * inF + columns[q]] = s[r * k + q];
  }
  return eff;
}

/** W_eff for W [out, in] (frozen) and S [out, k]; noise on the other columns when given. */
export function composeSalient(
  weight: Tensor,
  salient: Tensor,
  index: SalientIndex,
  noise: NoiseDraw | null,
  name = "gift-sw",
): Tensor {
  const op = `${name} compose`;
  assertDType(op, weight, "f32");
  assertDType(op, salient, "f32");
  const [out, inF] = weight.shape;
  const k = index.columns.length;
  if (
    weight.rank !== 2 || salient.rank !== 2 || salient.shape[0] !== out ||
    salient.shape[1] !== k || index.slot.size !== inF
  ) {
    throw new ShapeError(
      op,
      `W ${shapeString(weight.shape)}, S ${shapeString(salient.shape)} and ${k} salient of ` +
        `${index.slot.size} columns do not fit`,
    );
  }
  const e = weight.engine;
  const maxBind = e.gpu.limits.maxStorageBufferBindingSize;
  if (out * inF * 4 > maxBind) {
    throw new ShapeError(op, `W ${shapeString(weight.shape)} exceeds one storage binding`);
  }
  if (noise) {
    assertCounterWord(op, "seed", noise.seed);
    assertCounterWord(op, "step", noise.step);
    if (noise.halfDelta.size !== out) {
      throw new ShapeError(op, `Δ/2 has ${noise.halfDelta.size} rows, W has ${out}`);
    }
  }
  const params = {
    rows: out,
    cols: inF,
    k,
    seed: noise?.seed ?? 0,
    step: noise?.step ?? 0,
    noise: noise ? 1 : 0,
  };
  const eff = e.empty([out, inF], "f32", `${name} W_eff`);
  GIFT_KERNEL.dispatch(e.gpu, {
    label: op,
    entry: "compose",
    params,
    buffers: {
      weight: weight.storage,
      // Without noise the kernel never reads Δ/2; W stands in for the binding.
      half_delta: (noise?.halfDelta ?? weight).storage,
      salient_values: salient.storage,
      column_slot: index.slot.storage,
      out: eff.storage,
    },
    workgroups: groupsFor(e, out * inF, 64),
  });
  return e.record({
    op,
    inputs: [weight, salient],
    output: eff,
    backward: (g) => [null, gatherColumns(g, index, params, name)],
  });
}

/** dS [out, k] = the salient columns of dW_eff [out, in]. */
function gatherColumns(
  g: Tensor,
  index: SalientIndex,
  params: { rows: number; cols: number; k: number; seed: number; step: number; noise: number },
  name: string,
): Tensor {
  const e = g.engine;
  const ds = e.empty([params.rows, params.k], "f32", `${name} dS`);
  GIFT_KERNEL.dispatch(e.gpu, {
    label: `${name} gather columns`,
    entry: "gather_columns",
    params,
    buffers: { salient_cols: index.list.storage, grad: g.storage, grad_salient: ds.storage },
    workgroups: groupsFor(e, params.rows * params.k, 64),
  });
  return ds;
}
