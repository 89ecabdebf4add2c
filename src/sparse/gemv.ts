/**
 * One token's sparse products (decoding), the compressed operand read as is
 * (shaders/sparse_gemv.wgsl): y = S(x)·Wᵀ, reading only the columns of W that x kept, and
 * y = x·S(W)ᵀ. The kernel shapes and sizes are the dense GEMV's (src/tensor/ops/gemv.ts): "rows"
 * for a CPU adapter, "split" for a GPU, measured by tuneSparseGemv; "cols" for activation
 * sparsity against W stored transposed (wt [in, out]), the layout in which a pruned input skips
 * memory: with W [out, in] a group's kept and pruned columns share cache lines (8:16 keeps 8 of 16
 * floats, one 64-byte line), so the other kernels save loads but not traffic.
 */
import gemvShader from "../../shaders/sparse_gemv.wgsl" with { type: "text" };
import colsVec4Shader from "../../shaders/sparse_gemv_cols.wgsl" with { type: "text" };
import type { Engine } from "../tensor/engine.ts";
import { declareKernel, groupsFor } from "../tensor/kernel.ts";
import {
  fastest,
  GEMV_SIZES,
  gemvReadsVec4,
  type GemvShape,
  timeVariants,
} from "../tensor/ops/gemv.ts";
import { ShapeError, type Tensor } from "../tensor/tensor.ts";
import { VariantChoice } from "../tensor/variants.ts";
import { withNmReader } from "./gathered_dot.ts";
import { type Product, productParams } from "./operands.ts";
import { decodeTableBuffer, hasMaskTable } from "./tables.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

/** Kept positions a workgroup decodes into workgroup memory at a time (4 KiB). */
const KC = 1024;

export interface SparseGemvVariant {
  name: string;
  shape: GemvShape;
  workgroup: number;
  rows: number;
}

/** The Params of both shaders: productParams' fields. */
const PRODUCT_PARAMS = {
  cols: "u32",
  in_features: "u32",
  n: "u32",
  m: "u32",
  width: "u32",
  words: "u32",
  groups: "u32",
  kept: "u32",
} as const;

function declareSparseGemv([shape, workgroup, rows]: readonly [GemvShape, number, number]) {
  const variant: SparseGemvVariant = {
    name: `${shape} wg${workgroup} r${rows}`,
    shape,
    workgroup,
    rows,
  };
  const kernel = declareKernel({
    name: `sparse gemv ${variant.name}`,
    source: withNmReader(
      `const WG = ${workgroup}u;\nconst R = ${rows}u;\nconst KC = ${KC}u;\n${gemvShader}`,
    ),
    params: PRODUCT_PARAMS,
    buffers: ["values", "nm_meta", "binomials", "dense", "y"],
  });
  return [variant.name, { variant, kernel }] as const;
}

const KERNELS = new Map(GEMV_SIZES.map(declareSparseGemv));

/** The "cols" kernels on wt read as vec4s (outputs a multiple of 4), by variant name. */
const COLS_VEC4_KERNELS = new Map(
  GEMV_SIZES.filter(([shape]) => shape === "cols").map(([, workgroup, rows]) => [
    `cols wg${workgroup} r${rows}`,
    declareKernel({
      name: `sparse gemv cols wg${workgroup} r${rows} vec4`,
      source: withNmReader(`const WG = ${workgroup}u;\nconst R = ${rows}u;\n${colsVec4Shader}`),
      params: PRODUCT_PARAMS,
      buffers: ["values", "nm_meta", "binomials", "wt", "y"],
    }),
  ]),
);

/** Every sparse GEMV variant (the same names as the dense GEMV's). */
export const SPARSE_GEMV_VARIANTS: readonly SparseGemvVariant[] = [...KERNELS.values()].map((
  v,
) => v.variant);

/** The engine's sparse GEMV variant for W [out, in]: by adapter kind like the dense GEMV's. */
export const SPARSE_GEMV_CHOICE = new VariantChoice("sparse GEMV", SPARSE_GEMV_VARIANTS, {
  software: "rows wg8 r4",
  gpu: "split wg64 r4",
});

/** The "cols" variant for wt [in, out] on the adapter's kind. */
export const TRANSPOSED_SPARSE_GEMV_CHOICE = new VariantChoice(
  "sparse GEMV",
  SPARSE_GEMV_VARIANTS,
  { software: "cols wg8 r64", gpu: "cols wg64 r4" },
);

/**
 * Loop iterations of one invocation, counted the way llvmpipe counts them (all loops together).
 * Loops over an invocation's R outputs (R / 4 vec4s for "cols") have a constant count and are
 * unrolled when the shader is compiled, so they do not count (tests/sparse/gemv_test.ts runs walks
 * whose unrolled steps would be far past the budget). Activation-sparse "rows" and vec4 "cols":
 * every invocation walks x's kept positions; scalar "cols" and "split": the workgroup shares the
 * decoding of x's kept positions, then walks them; weight-sparse: one row's walk per output.
 */
function loopCost(v: SparseGemvVariant, p: Product, colsVec4: boolean): number {
  const { n, m } = p.nm.pattern;
  const l = p.nm.layout;
  const codes = p.nm.encoding === "combinatorial";
  const decode = codes && !hasMaskTable(p.nm.pattern) ? m : 1;
  const perWorker = v.shape === "split" ? v.workgroup : 1;
  if (p.activation && (v.shape === "rows" || colsVec4)) {
    return l.kept + (codes && !hasMaskTable(l.pattern) ? l.groups * m : 0) + 8;
  }
  if (p.activation) {
    const decoding = Math.ceil(l.kept / v.workgroup) * (codes ? 1 + n + decode : 2) +
      2 * l.kept / KC;
    const perKept = 1 + (v.shape === "cols" ? 0 : v.rows);
    return decoding + Math.ceil(l.kept / perWorker) * perKept + 4 * v.rows;
  }
  const walk = codes ? Math.ceil(l.groups / perWorker) * (1 + n + decode) : l.kept / perWorker;
  return v.rows * (walk + 2) + Math.log2(v.workgroup) * (1 + v.rows);
}

/**
 * Y [1, cols] of a checked one-token product, by the variant named (the engine's by default);
 * `transposed`: the dense operand is wt [in, cols] (activation-sparse only, "cols" kernels).
 */
export function sparseGemvForward(
  p: Product,
  dense: Tensor,
  name?: string,
  transposed = false,
): Tensor {
  const v = name
    ? SPARSE_GEMV_CHOICE.named(name)
    : (transposed ? TRANSPOSED_SPARSE_GEMV_CHOICE : SPARSE_GEMV_CHOICE).of(p.e);
  if ((v.shape === "cols") !== transposed || (transposed && !p.activation)) {
    throw new RangeError(
      `${p.op}: sparse GEMV variant ${v.name} does not take ${
        transposed ? "wt [in, out]" : "W [out, in]"
      }${p.activation ? "" : " for weight sparsity"}`,
    );
  }
  const vec4 = transposed && gemvReadsVec4("cols", p.inFeatures, p.cols);
  if (loopCost(v, p, vec4) > LOOP_BUDGET) {
    throw new ShapeError(
      p.op,
      `rows of ${p.inFeatures} features are too long for one invocation's loop budget (${v.name})`,
    );
  }
  const y = p.e.empty([1, p.cols], "f32", p.op);
  if (vec4) {
    dispatchColsVec4(p, v, dense, y);
    return y;
  }
  const { kernel } = KERNELS.get(v.name)!;
  const blocks = Math.ceil(p.cols / v.rows);
  const pattern = p.nm.pattern;
  const combinatorial = p.nm.encoding === "combinatorial";
  kernel.dispatch(p.e.gpu, {
    label: `sparse ${p.activation ? "activation" : "weight"} gemv ${v.name}`,
    entry: `${p.activation ? "activation" : "weight"}_${v.shape}`,
    constants: {
      ACTIVATION: p.activation ? 1 : 0,
      COMBINATORIAL: combinatorial ? 1 : 0,
      MASK_TABLE: combinatorial && hasMaskTable(pattern) ? 1 : 0,
    },
    params: productParams(p),
    buffers: {
      values: p.nm.values.storage,
      nm_meta: p.nm.meta.storage,
      binomials: decodeTableBuffer(p.e, pattern).storage,
      dense: dense.storage,
      y: y.storage,
    },
    workgroups: v.shape === "split"
      ? groupsFor(p.e, blocks, 1)
      : groupsFor(p.e, blocks, v.workgroup),
  });
  return y;
}

function dispatchColsVec4(p: Product, v: SparseGemvVariant, wt: Tensor, y: Tensor): void {
  const combinatorial = p.nm.encoding === "combinatorial";
  COLS_VEC4_KERNELS.get(v.name)!.dispatch(p.e.gpu, {
    label: `sparse activation gemv ${v.name} vec4`,
    entry: "activation_cols",
    constants: {
      COMBINATORIAL: combinatorial ? 1 : 0,
      MASK_TABLE: combinatorial && hasMaskTable(p.nm.pattern) ? 1 : 0,
    },
    params: productParams(p),
    buffers: {
      values: p.nm.values.storage,
      nm_meta: p.nm.meta.storage,
      binomials: decodeTableBuffer(p.e, p.nm.pattern).storage,
      wt: wt.storage,
      y: y.storage,
    },
    // A workgroup's invocations take neighbouring vec4s of outputs, R / 4 rounds of them.
    workgroups: groupsFor(p.e, p.cols / 4, v.workgroup * v.rows / 4),
  });
}

/**
 * Measures every sparse GEMV variant for W [out, in] on `run` (a one-token product taking a variant's name) and
 * makes the fastest the engine's.
 */
export async function tuneSparseGemv(
  e: Engine,
  run: (variant: string) => Tensor,
  repeats = 3,
): Promise<{ variant: SparseGemvVariant; times: Record<string, number> }> {
  const names = SPARSE_GEMV_VARIANTS.filter((v) => v.shape !== "cols").map((v) => v.name);
  const times = await timeVariants(e, names, run, repeats);
  return { variant: SPARSE_GEMV_CHOICE.use(e, fastest(times)), times };
}
