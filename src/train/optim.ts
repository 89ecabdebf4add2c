/**
 * Adam and AdamW on the GPU. A step is recorded into the command stream without any readback.
 *
 * Parameters whose gradient arrived as SparseRows (embedding tables) get the row-sparse ("lazy")
 * update: only the touched rows of the parameter and of its moments are read and written, so an
 * untouched row keeps its exact bits, moments included. As in PyTorch's SparseAdam and
 * TensorFlow's LazyAdam, the bias correction of a touched row uses the global step count t, not
 * the number of times that row was touched: a row first seen at step t is corrected by 1 − β^t,
 * which for large t is ≈ 1, so its first update is smaller than a dense Adam's first update.
 * Weight decay of a lazy row is likewise applied only on the steps that touch it. A table whose
 * gradient arrives dense as well (the fused losses write one) keeps the lazy rule: elements
 * whose gradient is exactly zero are left alone (see the shader).
 */
import adamShader from "../../shaders/adam.wgsl" with { type: "text" };
import updateShader from "../../shaders/adam_update.wgsl" with { type: "text" };
import type { Binding } from "../gpu/gpu.ts";
import { coalesceSparseGrads, rowScatterParts } from "../tensor/ops/embedding.ts";
import { dispatchFlat } from "../tensor/ops/elementwise.ts";
import {
  assertDType,
  assertSameShape,
  declareKernel,
  generatedKernels,
  groupsFor,
  range,
  rowWindows,
} from "../tensor/kernel.ts";
import type { Engine } from "../tensor/engine.ts";
import { ShapeError, shapeString, type SparseRows, type Tensor } from "../tensor/tensor.ts";

const ADAM_KERNEL = declareKernel({
  name: "adam",
  source: adamShader + updateShader,
  params: {
    n: "u32",
    lr: "f32",
    beta1: "f32",
    beta2: "f32",
    eps: "f32",
    weightDecay: "f32",
    stepSize: "f32",
    invSqrtBc2: "f32",
    cols: "u32",
    rowBase: "u32",
    gradSkip: "u32",
    idsAt: "u32",
    maxNorm: "f32",
  },
  buffers: ["param", "grad", "m", "v", "ids", "norm"],
});

/** The hyperparameters of a step, in the order of the shaders' Params (f32 each). */
const HYPER_FIELDS = [
  "lr",
  "beta1",
  "beta2",
  "eps",
  "weightDecay",
  "stepSize",
  "invSqrtBc2",
  "maxNorm",
] as const;

/**
 * The `dense` step of `slots` tensors, each with its parameter, gradient and moments at its own
 * bindings: workgroups [end(k−1), end(k)) update tensor k, 256 elements each, as one dispatch per
 * tensor would. Every dispatch has a cost of its own on llvmpipe and most of a model's tensors are
 * small, so a third of the dispatches (CoLES's 6 dense tensors in 2; lm:train's grad norm and
 * Adam alone took 33.1 instead of 38.0 ms a step); with at most 3 tensors (16 storage bindings)
 * the slower workgroups of a kernel over many bindings (see clip.ts) stay within a few percent.
 */
function denseSource(slots: number): string {
  const fields = [
    ...HYPER_FIELDS.map((f) => `${f}: f32`),
    ...range(slots).map((k) => `end${k}: u32, n${k}: u32`),
  ].join(", ");
  const bindings = range(slots).flatMap((k) =>
    [["param", "read_write"], ["grad", "read"], ["m", "read_write"], ["v", "read_write"]].map((
      [name, access],
      j,
    ) => `@group(0) @binding(${2 + 4 * k + j}) var<storage, ${access}> ${name}${k}: array<f32>;`)
  );
  const updates = range(slots).map((k) => `
fn update${k}(i: u32) {
  let next = adam(param${k}[i], clipped(grad${k}[i]), m${k}[i], v${k}[i]);
  m${k}[i] = next.y;
  v${k}[i] = next.z;
  param${k}[i] = next.x;
}`);
  const pick = range(slots).map((k) => {
    const first = k === 0 ? "group" : `(group - p.end${k - 1})`;
    return `  ${k === 0 ? "" : "else "}if (group < p.end${k}) {
    let i = ${first} * 256u + lid;
    if (i < p.n${k}) { update${k}(i); }
  }`;
  });
  return [
    `struct Params { ${fields} }`,
    "@group(0) @binding(0) var<uniform> p: Params;",
    "@group(0) @binding(1) var<storage, read> norm: array<f32>;",
    ...bindings,
    ...updates,
    "",
    "@compute @workgroup_size(256)",
    "fn dense(",
    "  @builtin(local_invocation_index) lid: u32,",
    "  @builtin(workgroup_id) wid: vec3u,",
    "  @builtin(num_workgroups) nwg: vec3u,",
    ") {",
    "  let group = wid.x + wid.y * nwg.x;",
    ...pick,
    "}",
    "",
  ].join("\n");
}

// One shape is registered for the declaration test; the others are generated alike.
const denseKernel = generatedKernels(
  (slots: number) => ({
    name: "adam dense",
    source: denseSource(slots) + updateShader,
    params: Object.fromEntries([
      ...HYPER_FIELDS.map((f) => [f, "f32"]),
      ...range(slots).flatMap((s) => [[`end${s}`, "u32"], [`n${s}`, "u32"]]),
    ]),
    buffers: [
      "norm",
      ...range(slots).flatMap((s) => ["param", "grad", "m", "v"].map((b) => b + s)),
    ],
  }),
  String,
  [2],
);

/** Tensors one `dense` dispatch binds: four bindings each, beside the norm's. */
function tensorsPerDispatch(e: Engine): number {
  return Math.max(1, Math.floor((e.gpu.limits.maxStorageBuffersPerShaderStage - 1) / 4));
}

/** The hyperparameters of one step, in the shader's terms. */
interface StepParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  stepSize: number;
  invSqrtBc2: number;
  /** Clipping (see ClipBy); 0: none. */
  maxNorm: number;
}

/**
 * Global-norm clipping applied as the gradients are read: each is scaled by min(1, maxNorm /
 * (norm + 1e-6)), clipGradNorm's factor, and left as it was (one pass over each gradient fewer).
 */
export interface ClipBy {
  /** The global norm of the gradients: gradNorm(…) (src/train/clip.ts). */
  norm: Tensor;
  maxNorm: number;
}

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** true: AdamW (decay multiplies the weights); false: Adam (decay is added to the gradient). */
  decoupled?: boolean;
}

interface Moments {
  m: Tensor;
  v: Tensor;
}

export class Adam {
  /** Steps taken so far; a checkpoint saves it and sets it back on restore. */
  stepCount = 0;
  readonly options: Required<AdamOptions>;
  private moments = new Map<Tensor, Moments>();
  private noClipNorm: Tensor | null = null;

  constructor(readonly params: Tensor[], opts: AdamOptions) {
    this.options = {
      lr: opts.lr,
      beta1: opts.beta1 ?? 0.9,
      beta2: opts.beta2 ?? 0.999,
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 0,
      decoupled: opts.decoupled ?? false,
    };
    const o = this.options;
    const rules: [keyof AdamOptions, boolean][] = [
      ["lr", o.lr > 0 && Number.isFinite(o.lr)],
      ["beta1", o.beta1 >= 0 && o.beta1 < 1],
      ["beta2", o.beta2 >= 0 && o.beta2 < 1],
      ["eps", o.eps > 0],
      ["weightDecay", o.weightDecay >= 0 && Number.isFinite(o.weightDecay)],
    ];
    for (const [name, ok] of rules) {
      if (!ok) throw new RangeError(`Adam: invalid ${name} ${o[name]}`);
    }
    for (const p of params) assertDType("Adam parameter", p, "f32");
  }

  /**
   * Updates every parameter that has a gradient; parameters without one are left alone. With
   * `clip`, the gradients are clipped by their global norm on the way in.
   */
  step(clip?: ClipBy): void {
    if (clip && !(clip.maxNorm > 0)) {
      throw new RangeError(`Adam: clip maxNorm must be > 0, got ${clip.maxNorm}`);
    }
    this.stepCount++;
    const { lr, beta1, beta2, eps, weightDecay } = this.options;
    const t = this.stepCount;
    const hyper: StepParams = {
      lr,
      beta1,
      beta2,
      eps,
      weightDecay,
      stepSize: lr / (1 - beta1 ** t),
      invSqrtBc2: 1 / Math.sqrt(1 - beta2 ** t),
      maxNorm: clip?.maxNorm ?? 0,
    };
    const dense: Tensor[] = [];
    for (const p of this.params) {
      const table = p.sparseGrads.length > 0;
      coalesceSparseGrads(p);
      if (p.grad && !table) dense.push(p);
      else if (p.grad) this.nonzeroStep(p, p.grad, hyper, clip?.norm);
      else if (p.sparseGrads.length) this.lazyStep(p, p.sparseGrads[0], hyper, clip?.norm);
    }
    if (dense.length) this.denseStep(dense, hyper, clip?.norm);
  }

  /** Frees the moments (the parameters belong to the model). */
  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
    this.noClipNorm?.dispose();
    this.noClipNorm = null;
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /**
   * The moments of every parameter by name `m.<i>` / `v.<i>` (i: index in `params`), allocated
   * (zero) if no step has made them yet, so that a checkpoint can read them or write into them.
   */
  stateTensors(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    this.params.forEach((p, i) => {
      const { m, v } = this.momentsOf(p);
      out[`m.${i}`] = m;
      out[`v.${i}`] = v;
    });
    return out;
  }

  /** What the shader's norm binding holds without clipping (maxNorm 0: it is never read). */
  private normStandIn(e: Engine): Tensor {
    if (!this.noClipNorm) {
      this.noClipNorm = e.zeros([1], "f32", "adam no clip");
      e.keep(this.noClipNorm);
    }
    return this.noClipNorm;
  }

  private momentsOf(p: Tensor): Moments {
    let s = this.moments.get(p);
    if (!s) {
      const e = p.engine;
      s = {
        m: e.zeros(p.shape, "f32", `adam m ${p.name}`),
        v: e.zeros(p.shape, "f32", `adam v ${p.name}`),
      };
      e.keep(s.m, s.v);
      this.moments.set(p, s);
    }
    return s;
  }

  /** Every element of each of `params`, binding window by window, several tensors a dispatch. */
  private denseStep(params: Tensor[], hyper: StepParams, norm?: Tensor): void {
    const e = params[0].engine;
    norm ??= this.normStandIn(e);
    const windows = params.flatMap((p) => {
      assertSameShape("Adam gradient", p, p.grad!);
      const { m, v } = this.momentsOf(p);
      const tensors = { param: p, grad: p.grad!, m, v };
      return rowWindows(e, p.size, 4).map((w) => ({ tensors, w }));
    });
    const perDispatch = tensorsPerDispatch(e);
    for (let first = 0; first < windows.length; first += perDispatch) {
      const part = windows.slice(first, first + perDispatch);
      const values: Record<string, number> = { ...hyper };
      const buffers: Record<string, Binding> = { norm: norm.storage };
      let end = 0;
      part.forEach(({ tensors, w }, k) => {
        end += Math.ceil(w.rows / 256);
        values[`end${k}`] = end;
        values[`n${k}`] = w.rows;
        for (const [name, t] of Object.entries(tensors)) {
          buffers[name + k] = { alloc: t.storage, offset: w.offset, size: w.size };
        }
      });
      denseKernel(part.length).dispatch(e.gpu, {
        entry: "dense",
        constants: { DECOUPLED: this.options.decoupled ? 1 : 0 },
        params: values,
        buffers,
        workgroups: groupsFor(e, end, 1),
      });
    }
  }

  /** `nonzero` over every element of p (a table whose gradient arrived dense). */
  private nonzeroStep(
    p: Tensor,
    grad: Tensor,
    hyper: StepParams,
    norm = this.normStandIn(p.engine),
  ): void {
    assertSameShape("Adam gradient", p, grad);
    const { m, v } = this.momentsOf(p);
    dispatchFlat(p.engine, ADAM_KERNEL, {
      entry: "nonzero",
      label: "adam nonzero",
      constants: { DECOUPLED: this.options.decoupled ? 1 : 0 },
      // Zeros fill the row fields, which only `rows` reads.
      params: { ...hyper, cols: 0, rowBase: 0, gradSkip: 0, idsAt: 0 },
      tensors: { param: p, grad, m, v },
      whole: { norm },
    });
  }

  private lazyStep(
    p: Tensor,
    g: SparseRows,
    hyper: StepParams,
    norm = this.normStandIn(p.engine),
  ): void {
    const [rows, cols] = p.shape;
    if (p.rank !== 2 || g.rows.shape[1] !== cols) {
      throw new ShapeError(
        "Adam",
        `sparse gradient rows ${shapeString(g.rows.shape)} do not fit parameter ` +
          shapeString(p.shape),
      );
    }
    const e = p.engine;
    const { m, v } = this.momentsOf(p);
    for (const part of rowScatterParts(e, g.ids, rows, cols)) {
      const dst = { offset: part.dst.offset, size: part.dst.size };
      ADAM_KERNEL.dispatch(e.gpu, {
        label: "adam rows",
        entry: "rows",
        constants: { DECOUPLED: this.options.decoupled ? 1 : 0 },
        params: {
          n: part.count * cols,
          ...hyper,
          cols,
          rowBase: part.dst.row,
          gradSkip: part.first - part.src.row,
          idsAt: part.first,
        },
        buffers: {
          param: { alloc: p.storage, ...dst },
          grad: { alloc: g.rows.storage, offset: part.src.offset, size: part.src.size },
          m: { alloc: m.storage, ...dst },
          v: { alloc: v.storage, ...dst },
          ids: g.idsGpu.storage,
          norm: norm.storage,
        },
        workgroups: groupsFor(e, part.count * cols),
      });
    }
  }
}
