/**
 * One token's linear layer, y = x·Wᵀ with x [..., in] holding one row and W [out, in]
 * (shaders/gemv.wgsl): the decoding step of a language model, memory-bound, where the tiled
 * matmul would spend its register tiles on copies of the single row. Two shapes of kernel, each
 * in a few sizes: "split" (a workgroup per block of rows, a reduction in workgroup memory: what a
 * GPU wants) and "rows" (an invocation per block of rows: what a CPU adapter's SIMD lanes want).
 * The engine's variant defaults by adapter kind and can be measured with tuneGemv. With W stored
 * transposed (`transposed`: wt [in, out], input-major) the "cols" kernels walk the inputs, each
 * invocation reading neighbouring outputs: the layout in which skipping an input skips memory, the
 * baseline for activation-sparse decoding (src/sparse/gemv.ts). Where the weight operand's rows
 * are whole vec4s (in a multiple of 4; out for "cols") every variant runs on shaders/gemv_vec4.wgsl,
 * which reads W as vec4s: a CPU adapter pays for each lane's load about the same whatever its
 * width, so that halved the time on llvmpipe.
 */
import gemvShader from "../../../shaders/gemv.wgsl" with { type: "text" };
import gemvVec4Shader from "../../../shaders/gemv_vec4.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { assertDType, declareKernel, groupsFor } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { VariantChoice } from "../variants.ts";
import { matmul } from "./matmul.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";

/** "split" and "rows" take W [out, in]; "cols" takes Wᵀ [in, out]. */
export type GemvShape = "split" | "rows" | "cols";

/** A GEMV kernel: its entry point, invocations per workgroup and output rows per block. */
export interface GemvVariant {
  name: string;
  shape: GemvShape;
  workgroup: number;
  rows: number;
}

/** (shape, invocations per workgroup, rows per block) of the variants; the sparse GEMVs reuse them. */
export const GEMV_SIZES: readonly [GemvShape, number, number][] = [
  ["rows", 8, 4],
  ["rows", 8, 8],
  ["rows", 8, 16],
  ["rows", 64, 4],
  ["split", 64, 4],
  ["split", 256, 1],
  ["cols", 8, 16],
  ["cols", 8, 32],
  ["cols", 8, 64],
  ["cols", 64, 4],
];

function declareGemv([shape, workgroup, rows]: [GemvShape, number, number]) {
  const variant: GemvVariant = { name: `${shape} wg${workgroup} r${rows}`, shape, workgroup, rows };
  const declare = (suffix: string, shader: string) =>
    declareKernel({
      name: `gemv ${variant.name}${suffix}`,
      source: `const WG = ${workgroup}u;\nconst R = ${rows}u;\n${shader}`,
      params: { out_features: "u32", in_features: "u32" },
      buffers: ["x", "w", "y"],
    });
  return [variant.name, {
    variant,
    kernel: declare("", gemvShader),
    vec4: declare(" vec4", gemvVec4Shader),
  }] as const;
}

const GEMV_KERNELS = new Map(GEMV_SIZES.map(declareGemv));

/** Every dense GEMV variant. */
export const GEMV_VARIANTS: readonly GemvVariant[] = [...GEMV_KERNELS.values()].map((v) =>
  v.variant
);

/** The engine's GEMV variant for W [out, in]: "rows" on a CPU adapter, "split" on a GPU. */
export const GEMV_CHOICE = new VariantChoice("GEMV", GEMV_VARIANTS, {
  software: "rows wg8 r4",
  gpu: "split wg64 r4",
});

/** The "cols" variant for wt [in, out] on the adapter's kind. */
export const TRANSPOSED_GEMV_CHOICE = new VariantChoice("GEMV", GEMV_VARIANTS, {
  software: "cols wg8 r64",
  gpu: "cols wg64 r4",
});

export interface GemvOptions {
  /** A variant's name; the engine's choice by default. */
  variant?: string;
  /** w is Wᵀ [in, out] (input-major) instead of W [out, in]. */
  transposed?: boolean;
}

/**
 * y = x·Wᵀ for one row: x [..., in] whose leading dimensions hold one row, w [out, in] (or
 * wt [in, out] with `transposed`) → [..., out].
 */
export function gemv(x: Tensor, w: Tensor, opts: GemvOptions = {}): Tensor {
  const op = "gemv";
  const e = x.engine;
  const transposed = opts.transposed ?? false;
  assertDType(op, x, "f32");
  assertDType(op, w, "f32");
  const inF = x.shape[x.rank - 1];
  if (x.rank < 1 || x.size !== inF || w.rank !== 2 || w.shape[transposed ? 0 : 1] !== inF) {
    throw new ShapeError(
      op,
      `x ${shapeString(x.shape)} must be one row of w's ${shapeString(w.shape)} inputs ` +
        `(x [..., in] with one row, w ${transposed ? "transposed [in, out]" : "[out, in]"})`,
    );
  }
  const outF = w.shape[transposed ? 1 : 0];
  const variant = opts.variant
    ? GEMV_CHOICE.named(opts.variant)
    : transposed
    ? TRANSPOSED_GEMV_CHOICE.of(e)
    : GEMV_CHOICE.of(e);
  if ((variant.shape === "cols") !== transposed) {
    throw new RangeError(
      `gemv: variant ${variant.name} takes ${
        variant.shape === "cols" ? "wt [in, out]" : "w [out, in]"
      }`,
    );
  }
  if (w.size * 4 > e.gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(op, `w ${shapeString(w.shape)} does not fit one storage binding`);
  }
  if (loopCost(variant, inF) > LOOP_BUDGET) {
    throw new ShapeError(
      op,
      `rows of ${inF} inputs are too long for one invocation's loop budget (${variant.name})`,
    );
  }
  const y = e.empty([...x.shape.slice(0, -1), outF], "f32", op);
  if (outF > 0) {
    dispatchGemv(e, variant, { x, w, y, inF, outF });
  }
  return e.record({
    op,
    inputs: [x, w],
    output: y,
    // x [1, in], dy [1, out]: dx = dy·W, dW = dyᵀ·x, dWᵀ = xᵀ·dy (rare in decoding: the matmul's).
    backward: (dy) => [
      x.requiresGrad ? asShape(e, (d) => matmul(d, w, { transB: transposed }), dy, x.shape) : null,
      w.requiresGrad
        ? asShape(
          e,
          (d) =>
            transposed
              ? matmul(e.alias(x, [1, inF]), d, { transA: true })
              : matmul(d, e.alias(x, [1, inF]), { transA: true }),
          dy,
          w.shape,
        )
        : null,
    ],
  });
}

/** f(dy viewed as [1, out]) viewed as `shape`, the intermediate views released. */
function asShape(
  e: Engine,
  f: (dy: Tensor) => Tensor,
  dy: Tensor,
  shape: readonly number[],
): Tensor {
  return e.tidy(() => {
    const r = f(e.alias(dy, [1, dy.size]));
    return e.alias(r, shape);
  });
}

/**
 * Loop iterations of one invocation, counted the way llvmpipe counts them (all loops together).
 * The "cols" kernels' loops over their R / 4 vec4s have a constant count and are unrolled when the
 * shader is compiled, so only the walk over the inputs counts (tests/tensor/gemv_test.ts runs a
 * walk whose unrolled steps would be far past the budget).
 */
function loopCost(v: GemvVariant, inF: number): number {
  if (v.shape === "cols") return inF + 8;
  const steps = v.shape === "rows" ? Math.ceil(inF / 4) + 3 : Math.ceil(inF / v.workgroup);
  return steps * (1 + v.rows) + Math.log2(v.workgroup) * (1 + v.rows) + 2 * v.rows;
}

interface GemvCall {
  x: Tensor;
  w: Tensor;
  y: Tensor;
  inF: number;
  outF: number;
}

/**
 * Whether the rows of the weight operand (W's rows of in, or wt's rows of out for "cols") are whole
 * vec4s, so that gemv_vec4.wgsl can read it.
 */
export function gemvReadsVec4(shape: GemvShape, inF: number, outF: number): boolean {
  return (shape === "cols" ? outF : inF) % 4 === 0;
}

function dispatchGemv(e: Engine, v: GemvVariant, c: GemvCall): void {
  const kernels = GEMV_KERNELS.get(v.name)!;
  const vec4 = gemvReadsVec4(v.shape, c.inF, c.outF);
  const blocks = Math.ceil(c.outF / v.rows);
  (vec4 ? kernels.vec4 : kernels.kernel).dispatch(e.gpu, {
    label: `gemv ${v.name}${vec4 ? " vec4" : ""}`,
    entry: v.shape,
    params: { out_features: c.outF, in_features: c.inF },
    buffers: { x: c.x.storage, w: c.w.storage, y: c.y.storage },
    workgroups: v.shape === "split" ? groupsFor(e, blocks, 1) : v.shape === "cols" && vec4
      // vec4 cols: a workgroup's invocations take neighbouring vec4s, R / 4 rounds of them.
      ? groupsFor(e, c.outF / 4, v.workgroup * v.rows / 4)
      : groupsFor(e, blocks, v.workgroup),
  });
}

/**
 * Milliseconds per call of each named run: the fastest of `repeats` timed batches, each of as many
 * calls as fill about 50 ms (a submit and a wait cost a CPU adapter milliseconds of their own),
 * after one untimed call that compiles the pipeline.
 */
export async function timeVariants(
  e: Engine,
  names: readonly string[],
  run: (name: string) => Tensor,
  repeats = 3,
): Promise<Record<string, number>> {
  const times: Record<string, number> = {};
  const batch = async (name: string, calls: number) => {
    const start = performance.now();
    for (let c = 0; c < calls; c++) e.noGrad(() => run(name)).dispose();
    await e.gpu.sync();
    return (performance.now() - start) / calls;
  };
  for (const name of names) {
    const first = await batch(name, 1);
    const calls = Math.min(50, Math.max(1, Math.round(50 / Math.max(first, 0.01))));
    let best = Infinity;
    for (let r = 0; r < repeats; r++) best = Math.min(best, await batch(name, calls));
    times[name] = best;
  }
  return times;
}

/** The fastest entry of `times`. */
export function fastest(times: Record<string, number>): string {
  return Object.entries(times).reduce((a, b) => (b[1] < a[1] ? b : a))[0];
}

/**
 * Measures every dense GEMV variant for W [out, in] on a square layer of `inFeatures` (1024) and
 * makes the fastest the engine's.
 */
export async function tuneGemv(
  e: Engine,
  opts: { inFeatures?: number; repeats?: number } = {},
): Promise<{ variant: GemvVariant; times: Record<string, number> }> {
  const inF = opts.inFeatures ?? 1024;
  const x = e.zeros([1, inF]);
  const w = e.zeros([inF, inF]);
  const times = await timeVariants(
    e,
    GEMV_VARIANTS.filter((v) => v.shape !== "cols").map((v) => v.name),
    (variant) => gemv(x, w, { variant }),
    opts.repeats,
  );
  x.dispose();
  w.dispose();
  return { variant: GEMV_CHOICE.use(e, fastest(times)), times };
}
