/**
 * A batch of tokens' sparse products, tiled (shaders/sparse_tiled.wgsl): a workgroup computes TC
 * compressed rows × TD dense rows of Y from a chunk of columns at a time held in workgroup memory,
 * so that a dense row loaded once serves TC compressed rows and a decoded kept value RD outputs.
 * Variants differ in the invocation grid and each invocation's tile: wide workgroups for a GPU,
 * one SIMD vector (8 invocations) for llvmpipe; tuneSparseTiled measures them.
 */
import tiledShader from "../../shaders/sparse_tiled.wgsl" with { type: "text" };
import type { Engine } from "../tensor/engine.ts";
import { declareKernel } from "../tensor/kernel.ts";
import { fastest, timeVariants } from "../tensor/ops/gemv.ts";
import { VariantChoice } from "../tensor/variants.ts";
import { ShapeError, type Tensor } from "../tensor/tensor.ts";
import { withNmReader } from "./gathered_dot.ts";
import { type Product, productParams } from "./operands.ts";
import { decodeTableBuffer, hasMaskTable } from "./tables.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

/** The invocation grid (WGC × WGD), each invocation's tile (RC × RD) and the chunk K. */
export interface SparseTiledVariant {
  name: string;
  wgc: number;
  wgd: number;
  rc: number;
  rd: number;
  k: number;
}

/** llvmpipe's measured best first (2026-12-02, T = 16 and 512, 1024→1024, 8:16; 1×64 tiles and
 * 2 or 4 compressed rows per invocation were slower), then a GPU shape. */
const SIZES: [number, number, number, number, number][] = [
  [8, 1, 1, 32, 32],
  [2, 4, 4, 8, 32],
  [8, 8, 4, 4, 32],
];

function declareTiled([wgc, wgd, rc, rd, k]: [number, number, number, number, number]) {
  const variant: SparseTiledVariant = {
    name: `wg${wgc}x${wgd} ${rc}x${rd} k${k}`,
    wgc,
    wgd,
    rc,
    rd,
    k,
  };
  // The loaders are invocations 0 … TC − 1, one per compressed row of the tile.
  if (wgd < rc || rd % 4 !== 0) throw new Error(`sparse tiled ${variant.name}: bad tile`);
  const kernel = declareKernel({
    name: `sparse tiled ${variant.name}`,
    source: withNmReader(
      `const WGC = ${wgc}u;\nconst WGD = ${wgd}u;\nconst RC = ${rc}u;\nconst RD = ${rd}u;\n` +
        `const K = ${k}u;\n${tiledShader}`,
    ),
    params: {
      rows: "u32",
      cols: "u32",
      in_features: "u32",
      n: "u32",
      m: "u32",
      width: "u32",
      words: "u32",
      groups: "u32",
      kept: "u32",
      k_from: "u32",
      k_to: "u32",
    },
    buffers: ["values", "nm_meta", "binomials", "dense", "y"],
  });
  return [variant.name, { variant, kernel }] as const;
}

const KERNELS = new Map(SIZES.map(declareTiled));

export const SPARSE_TILED_VARIANTS: readonly SparseTiledVariant[] = [...KERNELS.values()].map((
  v,
) => v.variant);

/** The engine's tiled variant: by adapter kind unless a measurement chose one. */
export const SPARSE_TILED_CHOICE = new VariantChoice("sparse tiled", SPARSE_TILED_VARIANTS, {
  software: SPARSE_TILED_VARIANTS[0].name,
  gpu: "wg8x8 4x4 k32",
});

/**
 * Loop iterations of one invocation per chunk, counting every loop the way llvmpipe does (all of
 * an invocation's iterations together): the dense tile's load, the loader's walk (with codes
 * decoded by an M-step walk when there is no mask table) and the tile's products.
 */
function chunkCost(v: SparseTiledVariant, p: Product): number {
  const { n, m } = p.nm.pattern;
  const decode = p.nm.encoding === "combinatorial" && !hasMaskTable(p.nm.pattern) ? m : 1;
  const walked = Math.min(v.k, Math.ceil(v.k / m) * n + n);
  const load = Math.ceil((v.rd * v.wgd * v.k) / 4 / (v.wgc * v.wgd));
  return load + walked * (1 + decode) + v.rc * (1 + walked * (1 + v.rd / 4)) + 4;
}

/** Y [rows, cols] of a checked product, by the variant named (the engine's by default). */
export function sparseTiledForward(p: Product, dense: Tensor, name?: string): Tensor {
  const v = name ? SPARSE_TILED_CHOICE.named(name) : SPARSE_TILED_CHOICE.of(p.e);
  const { kernel } = KERNELS.get(v.name)!;
  const y = p.e.empty([p.rows, p.cols], "f32", p.op);
  if (p.rows === 0 || p.cols === 0) return y;
  const [nc, nd] = p.activation ? [p.rows, p.cols] : [p.cols, p.rows];
  const grid: [number, number] = [Math.ceil(nd / (v.wgd * v.rd)), Math.ceil(nc / (v.wgc * v.rc))];
  const maxGroups = p.e.gpu.limits.maxComputeWorkgroupsPerDimension;
  if (grid[0] > maxGroups || grid[1] > maxGroups) {
    throw new ShapeError(p.op, `${nc}×${nd} outputs need more than ${maxGroups} tiles a side`);
  }
  // Room for the loader's search to the pass's first column (a binary search, or ≤ N steps).
  const setup = Math.ceil(Math.log2(p.nm.layout.kept + 1)) + p.nm.pattern.n + 8;
  const chunksPerPass = Math.floor((LOOP_BUDGET - setup) / chunkCost(v, p));
  if (chunksPerPass < 1) throw new ShapeError(p.op, `a chunk exceeds the loop budget`);
  const combinatorial = p.nm.encoding === "combinatorial";
  for (let from = 0; from < p.inFeatures; from += chunksPerPass * v.k) {
    kernel.dispatch(p.e.gpu, {
      label: `sparse ${p.activation ? "activation" : "weight"} tiled ${v.name}`,
      constants: {
        ACTIVATION: p.activation ? 1 : 0,
        COMBINATORIAL: combinatorial ? 1 : 0,
        MASK_TABLE: combinatorial && hasMaskTable(p.nm.pattern) ? 1 : 0,
      },
      params: {
        ...productParams(p),
        rows: p.rows,
        k_from: from,
        k_to: Math.min(p.inFeatures, from + chunksPerPass * v.k),
      },
      buffers: {
        values: p.nm.values.storage,
        nm_meta: p.nm.meta.storage,
        binomials: decodeTableBuffer(p.e, p.nm.pattern).storage,
        dense: dense.storage,
        y: y.storage,
      },
      workgroups: grid,
    });
  }
  return y;
}

/** Measures every tiled variant on `run` (a product taking a variant's name); keeps the fastest. */
export async function tuneSparseTiled(
  e: Engine,
  run: (variant: string) => Tensor,
  repeats = 3,
): Promise<{ variant: SparseTiledVariant; times: Record<string, number> }> {
  const times = await timeVariants(e, SPARSE_TILED_VARIANTS.map((v) => v.name), run, repeats);
  return { variant: SPARSE_TILED_CHOICE.use(e, fastest(times)), times };
}
