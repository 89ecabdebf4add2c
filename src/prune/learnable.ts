/**
 * Learnable mitigations of activation pruning (methods.md §3, "learnable shift / scale+shift"):
 * per input feature of one pruned layer, a shift η [in] and, for scale-and-shift, a scale γ [in]:
 *   y = (γ ⊙ P(x − η) + η)·Wᵀ          (γ = 1 for the shift alone)
 * fitted layer by layer with W frozen, by the mean squared error against the dense layer x·Wᵀ on
 * the layer's own inputs from calibration batches, with the engine's autograd and an optimiser the
 * caller passes (Adam lives in src/train, above this layer). P keeps the top N of every M of
 * x − η by the layer's criterion; the selection itself has no gradient, so the fit differentiates
 * through the kept values only (the mask is recomputed from the current η every step). η = 0 and
 * γ = 1 at the start: the fit starts from the unmitigated layer.
 * At inference the layer runs on the sparse kernels: P(x − η)·(W·diag(γ))ᵀ + ηWᵀ.
 */
import { pruneNm, pruneUnstructured } from "../sparse/prune.ts";
import type { Engine } from "../tensor/engine.ts";
import { declareKernel, groupsFor } from "../tensor/kernel.ts";
import { add, mul, sub } from "../tensor/ops/elementwise.ts";
import { clone } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { mean } from "../tensor/ops/reduce.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { ActivationScorer } from "./criteria.ts";

/** What a fit learned for one layer, in float64. */
export interface LearnedMitigation {
  shift: Float64Array;
  /** γ; null for the shift alone. */
  scale: Float64Array | null;
}

/** The part of an optimiser the fit uses (src/train's Adam has it). */
export interface FitOptimizer {
  step(): void;
  zeroGrad(): void;
  dispose(): void;
}

export interface FitOptions {
  /** Passes over every calibration batch. */
  epochs: number;
  /** An optimiser over the fitted parameters (η, and γ for scale-and-shift). */
  makeOptimizer: (params: Tensor[]) => FitOptimizer;
}

/** The fit's result: the learned values and the layer's MSE on the calibration data. */
export interface FitResult {
  learned: LearnedMitigation;
  mseBefore: number;
  mseAfter: number;
}

/** How the fit keeps values: N of every M, or the top `kept` of each token. */
export type Keep = { pattern: { n: number; m: number } } | { kept: number };

const ABS_SHADER = /* wgsl */ `
// |x|, the magnitude criterion's scores, for the fit's mask (src/prune/learnable.ts).
struct Params { count: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.count) { return; }
  y[i] = abs(x[i]);
}
`;

const ABS_KERNEL = declareKernel({
  name: "learnable mitigation abs",
  source: ABS_SHADER,
  params: { count: "u32" },
  buffers: ["x", "y"],
});

function absOf(x: Tensor): Tensor {
  const e = x.engine;
  const y = e.empty(x.shape, "f32", "|x|");
  ABS_KERNEL.dispatch(e.gpu, {
    params: { count: x.size },
    buffers: { x: x.storage, y: y.storage },
    workgroups: groupsFor(e, x.size, 64),
  });
  return y;
}

/** The 0/1 mask of the values P keeps of z [T, in] (no gradient). */
export function keptMask(z: Tensor, keep: Keep, scorer: ActivationScorer): Tensor {
  const e = z.engine;
  return e.noGrad(() => {
    const scores = scorer.scores(z) ?? absOf(z);
    const ones = e.full(z.shape, 1, "ones");
    const { nm, masked } = "pattern" in keep
      ? pruneNm(ones, keep.pattern, { scores, masked: true })
      : pruneUnstructured(ones, keep.kept, { scores, masked: true });
    nm.dispose();
    return masked!;
  });
}

/** Rows of v [1, in] repeated T times, on the tape: ones [T, 1] · v. */
function repeatRows(v: Tensor, tokens: number): Tensor {
  return matmul(v.engine.full([tokens, 1], 1, "ones"), v);
}

/** (γ ⊙ P(x − η) + η)·Wᵀ for x [T, in], on the tape where η, γ need gradients. */
function mitigatedProduct(
  x: Tensor,
  w: Tensor,
  eta: Tensor,
  gamma: Tensor | null,
  keep: Keep,
  scorer: ActivationScorer,
): Tensor {
  const tokens = x.shape[0];
  const shift = repeatRows(eta, tokens);
  const z = sub(x, shift);
  let u = mul(z, keptMask(z, keep, scorer));
  if (gamma) u = mul(u, repeatRows(gamma, tokens));
  return matmul(add(u, shift), w, { transB: true });
}

/** Mean over batches of each batch's MSE against x·Wᵀ, without gradients. */
async function layerMse(
  inputs: Tensor[],
  w: Tensor,
  eta: Tensor,
  gamma: Tensor | null,
  keep: Keep,
  scorer: ActivationScorer,
): Promise<number> {
  const e = w.engine;
  let total = 0;
  for (const x of inputs) {
    const loss = e.tidy(() =>
      e.noGrad(() => {
        const d = sub(
          mitigatedProduct(x, w, eta, gamma, keep, scorer),
          matmul(x, w, {
            transB: true,
          }),
        );
        return mean(mul(d, d));
      })
    );
    total += (await loss.read())[0];
    loss.dispose();
  }
  return total / inputs.length;
}

/**
 * Fits η (and γ when `withScale`) of one layer W [out, in] on its calibration inputs (each
 * [T, in]); W is copied so that no gradient reaches the model.
 */
export async function fitLearnable(
  inputs: Tensor[],
  weight: Tensor,
  keep: Keep,
  scorer: ActivationScorer,
  withScale: boolean,
  opts: FitOptions,
): Promise<FitResult> {
  if (!inputs.length) throw new Error("fitLearnable: no calibration batch was seen");
  if (!(Number.isInteger(opts.epochs) && opts.epochs >= 1)) {
    throw new RangeError(`fitLearnable: epochs must be a positive integer, got ${opts.epochs}`);
  }
  const e: Engine = weight.engine;
  const inF = weight.shape[1];
  const w = clone(weight);
  const eta = e.parameter(new Float32Array(inF), [1, inF], "learned shift");
  const gamma = withScale
    ? e.parameter(new Float32Array(inF).fill(1), [1, inF], "learned scale")
    : null;
  const params = gamma ? [eta, gamma] : [eta];
  const optimizer = opts.makeOptimizer(params);
  try {
    const mseBefore = await layerMse(inputs, w, eta, gamma, keep, scorer);
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      for (const x of inputs) {
        e.tidy(() => {
          e.startTape();
          const d = sub(
            mitigatedProduct(x, w, eta, gamma, keep, scorer),
            e.noGrad(() => matmul(x, w, { transB: true })),
          );
          e.backward(mean(mul(d, d)));
        });
        optimizer.step();
        optimizer.zeroGrad();
      }
    }
    const mseAfter = await layerMse(inputs, w, eta, gamma, keep, scorer);
    const learned = {
      shift: Float64Array.from(await eta.read()),
      scale: gamma ? Float64Array.from(await gamma.read()) : null,
    };
    return { learned, mseBefore, mseAfter };
  } finally {
    optimizer.dispose();
    for (const t of [w, ...params]) t.dispose();
  }
}
