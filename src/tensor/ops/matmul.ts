/**
 * Matrix products: 2-D, batched and with a broadcast weight, in every transpose variant, with their
 * backward. Operands larger than one storage binding are cut into windows of whole rows.
 */
import scalarShader from "../../../shaders/matmul.wgsl" with { type: "text" };
import vec4Shader from "../../../shaders/matmul_vec4.wgsl" with { type: "text" };
import reduceShader from "../../../shaders/matmul_reduce.wgsl" with { type: "text" };
import type { GpuAllocation } from "../../gpu/allocator.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";
import { type BufferWindow, grid2d } from "../../gpu/gpu.ts";
import type { Engine } from "../engine.ts";
import { assertDType, declareKernel, groupsFor, softwarePieces } from "../kernel.ts";
import { numel, ShapeError, shapeString, type Tensor } from "../tensor.ts";

/** The product kernels' uniform: sizes, strides and origins (see matmul.wgsl). */
const PRODUCT_PARAMS = {
  M: "u32",
  N: "u32",
  K: "u32",
  batches: "u32",
  lda: "u32",
  ldb: "u32",
  ldc: "u32",
  kLast: "u32",
  offA: "u32",
  offB: "u32",
  offC: "u32",
  batchA: "u32",
  batchB: "u32",
  batchC: "u32",
} as const;
const SCALAR_KERNEL = declareKernel({
  name: "matmul scalar",
  source: scalarShader,
  params: PRODUCT_PARAMS,
  buffers: ["a", "b", "c"],
});

/**
 * A vec4 product kernel's shape: the tile of C per invocation and the invocations per workgroup.
 * 8 lanes and big tiles suit llvmpipe (one SIMD vector per workgroup, loads reused across the
 * tile); wider workgroups suit a GPU. tuneMatmul measures them on the adapter at hand.
 */
export interface MatmulVariant {
  name: string;
  rows: number;
  cols: number;
  workgroup: number;
}

const VARIANT_SHAPES: [number, number, number][] = [
  [32, 16, 8],
  [16, 16, 8],
  [32, 8, 8],
  [16, 16, 64],
  [32, 16, 64],
  [32, 32, 8],
];

const VEC4_KERNELS = new Map(VARIANT_SHAPES.map(([rows, cols, workgroup]) => {
  const name = `vec4 ${rows}×${cols} wg${workgroup}`;
  const variant: MatmulVariant = { name, rows, cols, workgroup };
  const kernel = declareKernel({
    name: `matmul ${name}`,
    source: `const WG = ${workgroup}u;\nconst TM = ${rows}u;\nconst TN = ${cols}u;\n${vec4Shader}`,
    params: PRODUCT_PARAMS,
    buffers: ["a", "b", "c"],
  });
  return [name, { variant, kernel }];
}));

/** Every vec4 variant, the default (llvmpipe's measured best before tuning existed) first. */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [...VEC4_KERNELS.values()].map((v) =>
  v.variant
);

const chosenVariant = new WeakMap<Engine, MatmulVariant>();

/**
 * llvmpipe's variant per pair of transposes until one is chosen for the engine (tuneMatmul):
 * 32 × 32 tiles for forward (NT) and input-gradient (NN) products, whose C is tall and narrow
 * (4,096 positions × a width of 32 to 172: ~15% faster than 32 × 16), and for weight gradients
 * (TN), whose C is small and whose long k is split into slices filling every lane: on the LM's
 * weight gradients (k = 4,096, C from 32 × 64 to 344 × 64) 20–35% faster than 32 × 16 alone,
 * about 3% of the LM training step. Measured and not taken: 32 × 64 tiles (NN and TN 2–6% of
 * the step, within noise, for ~15 s instead of ~4 s to compile each pipeline, and far longer
 * for scalar C); 32 × 32 with 16 or 32 lanes (no gain); a workgroup whose lanes share B's column
 * tile through workgroup memory (1.4–2× slower: the barriers, and B's loads from workgroup
 * memory cost about what the gathers they replace did inside the product loop).
 */
const SOFTWARE_DEFAULTS: Record<string, string> = {
  NN: "vec4 32×32 wg8",
  NT: "vec4 32×32 wg8",
  TN: "vec4 32×32 wg8",
  TT: "vec4 32×16 wg8",
};

/**
 * The vec4 variant "auto" products use on this engine: the one chosen, else (`transposes` given,
 * "NT" for op(A)·op(B)ᵀ) the adapter's default for that pair, else the first variant.
 */
export function matmulVariantOf(e: Engine, transposes?: string): MatmulVariant {
  const chosen = chosenVariant.get(e);
  if (chosen) return chosen;
  return transposes && e.gpu.isSoftware
    ? variantNamed(SOFTWARE_DEFAULTS[transposes])
    : MATMUL_VARIANTS[0];
}

/** Makes `name` the engine's vec4 variant. */
export function useMatmulVariant(e: Engine, name: string): MatmulVariant {
  const variant = variantNamed(name);
  chosenVariant.set(e, variant);
  return variant;
}

/** The variant called `name`, or an error listing them. */
function variantNamed(name: string): MatmulVariant {
  const found = VEC4_KERNELS.get(name);
  if (!found) {
    throw new RangeError(
      `unknown matmul variant "${name}": one of ${MATMUL_VARIANTS.map((v) => v.name).join(", ")}`,
    );
  }
  return found.variant;
}
const REDUCE_KERNEL = declareKernel({
  name: "matmul sum of partial products",
  source: reduceShader,
  params: { rows: "u32", cols: "u32", slices: "u32", ldc: "u32", offC: "u32" },
  buffers: ["parts", "c"],
});

/**
 * "scalar" forces the one-float-per-load kernel (the benchmark's baseline); "auto" takes the
 * engine's vec4 variant where the operands allow vec4 loads; a variant's name forces it there.
 */
export type MatmulKernel = "auto" | "scalar" | string;

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  kernel?: MatmulKernel;
  /**
   * residual + op(a)·op(b), residual shaped as the product: the product is added onto a copy of
   * it in the product kernel, one elementwise pass fewer than a separate add (a residual stream).
   */
  residual?: Tensor;
}

/** The sizes of a product: `batch` times op(A)[m, k] · op(B)[k, n]. */
interface Dims {
  batch: number;
  m: number;
  n: number;
  k: number;
}

/**
 * op(a) · op(b), where op transposes the last two dimensions when asked.
 * - a [M, K] (or [K, M] with transA), b [K, N] (or [N, K] with transB) → [M, N];
 * - a [..., M, K], b [..., K, N] with equal leading dimensions → [..., M, N] (batched);
 * - a [..., M, K], b [K, N] → [..., M, N]: a's leading dimensions become rows (linear layers).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  assertDType("matmul", a, "f32");
  assertDType("matmul", b, "f32");
  const { dims, outShape } = resolveShapes(a, b, transA, transB);
  const e = a.engine;
  const residual = opts.residual;
  if (residual) {
    assertDType("matmul residual", residual, "f32");
    if (residual.shape.join() !== outShape.join()) {
      throw new ShapeError(
        "matmul",
        `residual ${shapeString(residual.shape)} is not the product's ${shapeString(outShape)}`,
      );
    }
  }
  const out = e.empty(outShape, "f32", "matmul");
  if (residual && residual.size > 0) {
    e.gpu.copy(residual.storage, 0, out.storage, 0, residual.size * 4);
  }
  multiply(e, {
    ...dims,
    a: a.storage,
    b: b.storage,
    c: out.storage,
    transA,
    transB,
    kernel: opts.kernel ?? "auto",
    accumulate: residual !== undefined,
  });
  return e.record({
    op: "matmul",
    inputs: residual ? [a, b, residual] : [a, b],
    output: out,
    // The residual's gradient is g itself, handed on once the products have read it.
    backward: (g, [intoA, intoB]) => [
      a.requiresGrad ? gradientOfA(a, b, g, dims, transA, transB, intoA) : null,
      b.requiresGrad ? gradientOfB(a, b, g, dims, transA, transB, intoB) : null,
      residual?.requiresGrad ? g : null,
    ],
  });
}

function resolveShapes(a: Tensor, b: Tensor, transA: boolean, transB: boolean) {
  const fail = (why: string) =>
    new ShapeError(
      "matmul",
      `${why}: a ${shapeString(a.shape)}${transA ? " transposed" : ""} and b ${
        shapeString(b.shape)
      }${transB ? " transposed" : ""}`,
    );
  if (a.rank < 2 || b.rank < 2) throw fail("operands need at least 2 dimensions");
  const [aRows, aCols] = a.shape.slice(-2);
  const [bRows, bCols] = b.shape.slice(-2);
  const [m, k] = transA ? [aCols, aRows] : [aRows, aCols];
  const [kb, n] = transB ? [bCols, bRows] : [bRows, bCols];
  if (k !== kb) throw fail(`inner dimensions ${k} and ${kb} differ`);
  const leadA = a.shape.slice(0, -2);
  const leadB = b.shape.slice(0, -2);
  const outShape = [...leadA, m, n];
  if (leadB.length === 0) {
    if (leadA.length > 0 && transA) throw fail("a batched a cannot be transposed against a 2-D b");
    return { dims: { batch: 1, m: numel(leadA) * m, n, k }, outShape };
  }
  if (leadA.length !== leadB.length || leadA.some((s, i) => s !== leadB[i])) {
    throw fail("batch dimensions differ");
  }
  return { dims: { batch: numel(leadA), m, n, k }, outShape };
}

// With C = op(A)·op(B) and G = dL/dC: dop(A) = G·op(B)ᵀ and dop(B) = op(A)ᵀ·G; a transposed
// operand's gradient is the transpose of that, computed directly as a product in the other order.
// With `into` (the gradient the operand gathered from its other uses) the product is added to it.
function gradientOfA(
  a: Tensor,
  b: Tensor,
  g: Tensor,
  d: Dims,
  tA: boolean,
  tB: boolean,
  into: Tensor | null,
): Tensor {
  const da = into ?? a.engine.empty(a.shape, "f32", "matmul dA");
  return tA
    ? productInto(da, into !== null, d.batch, [d.k, d.m, d.n], b, tB, g, true)
    : productInto(da, into !== null, d.batch, [d.m, d.k, d.n], g, false, b, !tB);
}

function gradientOfB(
  a: Tensor,
  b: Tensor,
  g: Tensor,
  d: Dims,
  tA: boolean,
  tB: boolean,
  into: Tensor | null,
): Tensor {
  const db = into ?? a.engine.empty(b.shape, "f32", "matmul dB");
  return tB
    ? productInto(db, into !== null, d.batch, [d.n, d.k, d.m], g, true, a, tA)
    : productInto(db, into !== null, d.batch, [d.k, d.n, d.m], a, !tA, g, false);
}

/** c = op(x)·op(y) (c += … with `accumulate`), `batch` times, with op(x) [m, k], op(y) [k, n]. */
function productInto(
  c: Tensor,
  accumulate: boolean,
  batch: number,
  [m, n, k]: [number, number, number],
  x: Tensor,
  transA: boolean,
  y: Tensor,
  transB: boolean,
): Tensor {
  multiply(c.engine, {
    batch,
    m,
    n,
    k,
    a: x.storage,
    b: y.storage,
    c: c.storage,
    transA,
    transB,
    kernel: "auto",
    accumulate,
  });
  return c;
}

/** One product on contiguous row-major operands (batch-major), written into c. */
interface Product extends Dims {
  a: GpuAllocation;
  b: GpuAllocation;
  c: GpuAllocation;
  transA: boolean;
  transB: boolean;
  kernel: MatmulKernel;
  /** Add the product to what c holds instead of overwriting it. */
  accumulate: boolean;
}

type Axis = "m" | "n" | "k";

/** How an operand is stored: its rows run along one axis of the product, its columns another. */
interface Layout {
  alloc: GpuAllocation;
  rowAxis: Axis;
  colAxis: Axis;
  cols: number;
  batchStride: number;
}

function layouts(p: Product): [Layout, Layout, Layout] {
  const { m, n, k } = p;
  return [
    p.transA
      ? { alloc: p.a, rowAxis: "k", colAxis: "m", cols: m, batchStride: m * k }
      : { alloc: p.a, rowAxis: "m", colAxis: "k", cols: k, batchStride: m * k },
    p.transB
      ? { alloc: p.b, rowAxis: "n", colAxis: "k", cols: k, batchStride: k * n }
      : { alloc: p.b, rowAxis: "k", colAxis: "n", cols: n, batchStride: k * n },
    { alloc: p.c, rowAxis: "m", colAxis: "n", cols: n, batchStride: m * n },
  ];
}

/** A box of the product: batches [batch0, batch0 + batches) and a range along each axis. */
interface Window {
  batch0: number;
  batches: number;
  start: Record<Axis, number>;
  size: Record<Axis, number>;
}

/** The scalar kernel's tile (rows × columns of C per invocation) and workgroup; see matmul.wgsl. */
const SCALAR_TILE = { rows: 8, cols: 8 };
const SCALAR_WORKGROUP = 8;
/**
 * Slices of a split reduction are at least MIN_SLICE_K long and at most MAX_SLICE_K: llvmpipe
 * silently ends an invocation's loops after ~65,535 iterations, and a slice of 4,096 (what 256
 * tiles gave a windowed product over a 1,000,001-row table) is known to stay clear of that.
 */
const MIN_SLICE_K = 64;
const MAX_SLICE_K = 4096;

/**
 * The longest reduction one invocation may walk: llvmpipe counts every step of the k loop (the
 * vec4 kernels take 4 k a step, the scalar one 1) and silently ends it past ~65,535; a GPU does
 * not. Measured on llvmpipe: the scalar kernel right at k = 60,001 and wrong at 70,001.
 */
function longestLoopK(e: Engine, variant: MatmulVariant | null): number {
  return e.gpu.isSoftware ? (variant ? 4 : 1) * LOOP_BUDGET : Infinity;
}

/**
 * Split the reduction when C has fewer tiles than this. 256 tiles keep a GPU busy. llvmpipe runs
 * a workgroup (8 tiles) at a time per core, and every slice more is one more pass over C in the
 * sum, so two workgroups per core do there (the LM's weight gradients: ~8% faster on 2 cores).
 */
function splitBelowTiles(e: Engine): number {
  return e.gpu.isSoftware ? softwarePieces() : 256;
}

function multiply(e: Engine, p: Product): void {
  if (p.batch === 0 || p.m === 0 || p.n === 0) return;
  if (p.k === 0) {
    if (!p.accumulate) e.gpu.clear(p.c, 0, p.batch * p.m * p.n * 4);
    return;
  }
  for (const w of windowsOf(e, p)) {
    // Later slices of a reduction cut by the windows add into what the earlier ones wrote.
    multiplyWindow(e, p, w, p.accumulate || w.start.k > 0);
  }
}

/**
 * Cuts the product into windows whose operands each fit one storage binding: whole batches when
 * a matrix fits, else parts of one matrix (see chunkSizes); a cut along k makes partial sums
 * that later windows add to, in order.
 */
function windowsOf(e: Engine, p: Product): Window[] {
  const { maxStorageBufferBindingSize: maxBind, minStorageBufferOffsetAlignment: align } =
    e.gpu.limits;
  // Room for the shift between an aligned binding start and the window's first element.
  const maxFloats = Math.floor(maxBind / 4) - align / 4;
  const ops = layouts(p);
  const full = { m: p.m, n: p.n, k: p.k };
  const maxStride = Math.max(...ops.map((o) => o.batchStride));
  if (maxStride <= maxFloats) {
    const perWindow = Math.min(
      Math.floor(maxFloats / maxStride),
      e.gpu.limits.maxComputeWorkgroupsPerDimension,
    );
    const out: Window[] = [];
    for (let b0 = 0; b0 < p.batch; b0 += perWindow) {
      const batches = Math.min(perWindow, p.batch - b0);
      out.push({ batch0: b0, batches, start: { m: 0, n: 0, k: 0 }, size: full });
    }
    return out;
  }
  const chunk = chunkSizes(ops, full, maxFloats);
  const out: Window[] = [];
  for (let b0 = 0; b0 < p.batch; b0++) {
    for (let m0 = 0; m0 < p.m; m0 += chunk.m) {
      for (let n0 = 0; n0 < p.n; n0 += chunk.n) {
        for (let k0 = 0; k0 < p.k; k0 += chunk.k) {
          out.push({
            batch0: b0,
            batches: 1,
            start: { m: m0, n: n0, k: k0 },
            size: {
              m: Math.min(chunk.m, p.m - m0),
              n: Math.min(chunk.n, p.n - n0),
              k: Math.min(chunk.k, p.k - k0),
            },
          });
        }
      }
    }
  }
  return out;
}

/**
 * Window sizes along m, n, k under which every operand's span fits `maxFloats`: a too-large
 * operand is cut along its row axis, in multiples of 4 rows (vec4 loads along the columns stay
 * aligned) down to single rows, then along its column axis. A cut only shrinks the spans of the
 * operands already seen, so one pass suffices.
 */
function chunkSizes(ops: Layout[], full: Record<Axis, number>, maxFloats: number) {
  const chunk = { ...full };
  for (const o of ops) {
    const rowsThatFit = Math.floor((maxFloats - chunk[o.colAxis]) / o.cols) + 1;
    if (chunk[o.rowAxis] <= rowsThatFit) continue;
    if (rowsThatFit >= 4) {
      chunk[o.rowAxis] = rowsThatFit - (rowsThatFit % 4);
    } else if (rowsThatFit >= 1) {
      chunk[o.rowAxis] = rowsThatFit;
    } else {
      chunk[o.rowAxis] = 1;
      chunk[o.colAxis] = maxFloats - (maxFloats % 4);
    }
  }
  return chunk;
}

/** A binding over an operand's part of a window; `shift` floats precede the window's origin. */
interface Bound {
  binding: BufferWindow;
  shift: number;
  ld: number;
  batchStride: number;
}

function bind(e: Engine, o: Layout, w: Window): Bound {
  const align = e.gpu.limits.minStorageBufferOffsetAlignment;
  const origin = w.batch0 * o.batchStride + w.start[o.rowAxis] * o.cols + w.start[o.colAxis];
  const end = origin + (w.batches - 1) * o.batchStride + (w.size[o.rowAxis] - 1) * o.cols +
    w.size[o.colAxis];
  const offset = Math.floor((origin * 4) / align) * align;
  // Whole vec4s at the end where the buffer has them: a vec4 load may reach past the last float.
  const size = Math.min(
    Math.ceil((end * 4 - offset) / 16) * 16,
    o.alloc.capacity - offset,
    e.gpu.limits.maxStorageBufferBindingSize,
  );
  return {
    binding: { alloc: o.alloc, offset, size },
    shift: origin - offset / 4,
    ld: o.cols,
    batchStride: o.batchStride,
  };
}

function multiplyWindow(e: Engine, p: Product, w: Window, accumulate: boolean): void {
  const [opA, opB, opC] = layouts(p);
  const a = bind(e, opA, w);
  const b = bind(e, opB, w);
  const c = bind(e, opC, w);
  const { m, n, k } = w.size;
  const aligned = [a.ld, a.shift, b.ld, b.shift].every((v) => v % 4 === 0);
  const variant = p.kernel === "scalar" || !aligned
    ? null
    : p.kernel === "auto"
    ? matmulVariantOf(e, `${p.transA ? "T" : "N"}${p.transB ? "T" : "N"}`)
    : variantNamed(p.kernel);
  const kernel: KernelChoice = { variant, transA: p.transA, transB: p.transB };
  const tile = kernel.variant ?? SCALAR_TILE;
  const tiles = Math.ceil(m / tile.rows) * Math.ceil(n / tile.cols);
  const slicesThatFit = Math.floor(e.gpu.limits.maxStorageBufferBindingSize / (m * n * 4));
  const wanted = Math.min(Math.ceil(splitBelowTiles(e) / tiles), Math.floor(k / MIN_SLICE_K));
  // A split reduction keeps its slices under MAX_SLICE_K; a reduction longer than an invocation
  // may loop is split whatever C's tiles.
  const longest = longestLoopK(e, variant);
  const slices = w.batches === 1 && (wanted >= 2 || k > longest)
    ? Math.min(Math.max(wanted, Math.ceil(k / MAX_SLICE_K)), slicesThatFit)
    : 1;
  if (Math.ceil(k / slices) > longest) {
    throw new ShapeError(
      "matmul",
      `a reduction over ${k} (${w.batches} batches of ${m}×${n}) cannot be split into slices ` +
        `of at most ${longest}, the loop llvmpipe runs to the end`,
    );
  }
  // Only `main` of the vec4 kernels adds into C itself: scalar stores that read C back compile
  // several times slower (see matmul_vec4.wgsl).
  const addsInKernel = variant !== null && vec4Stores(n, c);
  if (slices < 2 && (!accumulate || addsInKernel)) {
    launch(e, kernel, { a, b, c, m, n, k, batches: w.batches, kLast: k, accumulate });
    return;
  }
  // Slices of k run in parallel into a scratch buffer (few tiles and a long reduction), then one
  // pass adds them up in slice order, into C or onto what earlier windows left there. Unsplit
  // (a sum into C the kernel cannot store itself), the scratch holds the window's batches, whose
  // rows follow one another in C as they do there (C's rows are whole: ld = n).
  const kSlice = slices >= 2 ? Math.ceil(k / slices / 4) * 4 : k;
  const count = Math.ceil(k / kSlice);
  const batches = slices >= 2 ? count : w.batches;
  const partsBytes = batches * m * n * 4;
  const parts = e.gpu.alloc(partsBytes, "matmul partial products");
  const sliceOf = (o: Bound, alongRows: boolean): Bound =>
    slices >= 2 ? { ...o, batchStride: alongRows ? kSlice * o.ld : kSlice } : o;
  launch(e, kernel, {
    a: sliceOf(a, p.transA),
    b: sliceOf(b, !p.transB),
    c: {
      binding: { alloc: parts, offset: 0, size: Math.ceil(partsBytes / 16) * 16 },
      shift: 0,
      ld: n,
      batchStride: m * n,
    },
    m,
    n,
    k: kSlice,
    batches,
    kLast: k - (count - 1) * kSlice,
    accumulate: false,
  });
  const sumVec4 = vec4Stores(n, c);
  REDUCE_KERNEL.dispatch(e.gpu, {
    entry: sumVec4 ? "sum_vec4" : "main",
    constants: { ACCUMULATE: accumulate ? 1 : 0 },
    params: { rows: m * w.batches, cols: n, slices: count, ldc: c.ld, offC: c.shift },
    buffers: { parts: { alloc: parts, offset: 0, size: partsBytes }, c: c.binding },
    workgroups: groupsFor(e, m * w.batches * n / (sumVec4 ? 4 : 1)),
  });
  e.gpu.release(parts);
}

interface KernelChoice {
  /** The vec4 variant, or null for the scalar kernel. */
  variant: MatmulVariant | null;
  transA: boolean;
  transB: boolean;
}

interface Launch {
  a: Bound;
  b: Bound;
  c: Bound;
  m: number;
  n: number;
  k: number;
  batches: number;
  /** K of the last batch (shorter for the last slice of a split reduction). */
  kLast: number;
  /** Add into C (the vec4 kernels' `main` only). */
  accumulate: boolean;
}

/** Whether a vec4 kernel can store C as vec4s (its `main` entry). */
function vec4Stores(n: number, c: Bound): boolean {
  return [n, c.ld, c.shift].every((x) => x % 4 === 0);
}

function launch(e: Engine, kc: KernelChoice, l: Launch): void {
  // The vec4 kernel counts A and B in vec4s; C's units are always floats.
  const v = kc.variant;
  const unit = v ? 4 : 1;
  const vec4C = v !== null && vec4Stores(l.n, l.c);
  const transposes = `${kc.transA ? "T" : "N"}${kc.transB ? "T" : "N"}`;
  const name = v ? (vec4C ? v.name : `${v.name}, scalar C`) : "scalar";
  const tile = v ?? SCALAR_TILE;
  const tiles = Math.ceil(l.m / tile.rows) * Math.ceil(l.n / tile.cols);
  // The kernels number the tiles of all batches in one sequence.
  const groups = grid2d(
    Math.ceil(tiles * l.batches / (v?.workgroup ?? SCALAR_WORKGROUP)),
    e.gpu.limits.maxComputeWorkgroupsPerDimension,
  );
  (v ? VEC4_KERNELS.get(v.name)!.kernel : SCALAR_KERNEL).dispatch(e.gpu, {
    label: `matmul ${transposes} ${name}`,
    entry: v && !vec4C ? "scalar_c" : "main",
    constants: {
      TRANS_A: kc.transA ? 1 : 0,
      TRANS_B: kc.transB ? 1 : 0,
      ...(l.accumulate ? { ACCUMULATE: 1 } : {}),
    },
    params: {
      M: l.m,
      N: l.n,
      K: l.k,
      batches: l.batches,
      lda: l.a.ld / unit,
      ldb: l.b.ld / unit,
      ldc: l.c.ld,
      kLast: l.kLast,
      offA: l.a.shift / unit,
      offB: l.b.shift / unit,
      offC: l.c.shift,
      batchA: l.a.batchStride / unit,
      batchB: l.b.batchStride / unit,
      batchC: l.c.batchStride,
    },
    buffers: { a: l.a.binding, b: l.b.binding, c: l.c.binding },
    workgroups: [groups[0], groups[1], 1],
  });
}
