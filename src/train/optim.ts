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
import { coalesceSparseGrads, rowScatterParts } from "../tensor/ops/embedding.ts";
import { dispatchFlat } from "../tensor/ops/elementwise.ts";
import { assertDType, assertSameShape, declareKernel, groupsFor } from "../tensor/kernel.ts";
import type { Engine } from "../tensor/engine.ts";
import { ShapeError, shapeString, type SparseRows, type Tensor } from "../tensor/tensor.ts";

const ADAM_KERNEL = declareKernel({
  name: "adam",
  source: adamShader,
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
    for (const p of this.params) {
      const table = p.sparseGrads.length > 0;
      coalesceSparseGrads(p);
      if (p.grad) this.flatStep(table ? "nonzero" : "dense", p, p.grad, hyper, clip?.norm);
      else if (p.sparseGrads.length) this.lazyStep(p, p.sparseGrads[0], hyper, clip?.norm);
    }
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

  /** `dense` or `nonzero` over every element of p. */
  private flatStep(
    entry: "dense" | "nonzero",
    p: Tensor,
    grad: Tensor,
    hyper: StepParams,
    norm = this.normStandIn(p.engine),
  ): void {
    assertSameShape("Adam gradient", p, grad);
    const { m, v } = this.momentsOf(p);
    dispatchFlat(p.engine, ADAM_KERNEL, {
      entry,
      label: `adam ${entry}`,
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
