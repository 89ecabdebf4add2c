/**
 * The GRU recurrence, fused: one kernel runs a pass of time steps forward with the hidden states
 * in workgroup memory (eight sequences per workgroup), one runs them backward; the weight gradients
 * are two reductions over the saved states (a matmul and a column sum).
 */
import forwardShader from "../../../shaders/gru_forward.wgsl" with { type: "text" };
import backwardShader from "../../../shaders/gru_backward.wgsl" with { type: "text" };
import { assertDType, declareKernel } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { matmul } from "./matmul.ts";
import { columnSums } from "./reduce.ts";
import { reshape } from "./shape.ts";

const GRU_FORWARD_KERNEL = declareKernel({
  name: "gru forward",
  source: forwardShader,
  params: { batch: "u32", steps: "u32", hidden: "u32", t0: "u32", t1: "u32" },
  buffers: ["gx", "w_hh", "b_hh", "lengths", "hs", "work", "hprev"],
});

const GRU_BACKWARD_KERNEL = declareKernel({
  name: "gru backward",
  source: backwardShader,
  params: { batch: "u32", steps: "u32", hidden: "u32", t0: "u32", t1: "u32" },
  buffers: ["w_hh", "lengths", "work", "hprev", "dhs", "carry", "dgx", "dgh"],
});

/** The kernels' workgroup memory holds at most this many hidden units (4 per thread). */
export const GRU_MAX_HIDDEN = 256;
const WG = 64;
/** Sequences per workgroup (the lanes of two vec4 in the kernels). */
const SEQ = 8;
/** Loop iterations one invocation may spend in a pass: half of llvmpipe's 65,535. */
const PASS_ITERATIONS = 32768;

/** Time steps per pass: each step costs a thread ~units · H (forward) or units · 3H (backward). */
export function gruStepsPerPass(hidden: number, backward: boolean): number {
  const units = Math.ceil(hidden / WG);
  const perStep = units * ((backward ? 3 : 1) * hidden + 2) + 2;
  return Math.max(1, Math.floor(PASS_ITERATIONS / perStep));
}

function checkGru(gx: Tensor, wHH: Tensor, bHH: Tensor, lengths: Int32Array): number[] {
  for (const t of [gx, wHH, bHH]) assertDType("gru", t, "f32");
  const [batch, steps, threeH] = gx.rank === 3 ? gx.shape : [0, 0, 0];
  const hidden = threeH / 3;
  const ok = gx.rank === 3 && Number.isInteger(hidden) && hidden >= 1 &&
    wHH.rank === 2 && wHH.shape[0] === threeH && wHH.shape[1] === hidden &&
    bHH.rank === 1 && bHH.shape[0] === threeH && lengths.length === batch;
  if (!ok) {
    throw new ShapeError(
      "gru",
      `want gx [B, T, 3H], w_hh [3H, H], b_hh [3H], lengths [B]; got gx ${
        shapeString(gx.shape)
      }, w_hh ${shapeString(wHH.shape)}, b_hh ${shapeString(bHH.shape)}, ${lengths.length} lengths`,
    );
  }
  if (hidden > GRU_MAX_HIDDEN) {
    throw new RangeError(`gru: hidden ${hidden} is over the kernels' ${GRU_MAX_HIDDEN}`);
  }
  if (Math.ceil(batch / SEQ) > gx.engine.gpu.limits.maxComputeWorkgroupsPerDimension) {
    throw new RangeError(`gru: batch ${batch} is over the adapter's workgroups per dimension`);
  }
  lengths.forEach((l, i) => {
    if (!(Number.isInteger(l) && l >= 0 && l <= steps)) {
      throw new RangeError(`gru: length ${l} of sequence ${i} is outside [0, ${steps}]`);
    }
  });
  return [batch, steps, hidden];
}

/** [t0, t1) passes covering `steps` steps, `per` at a time. */
function passes(steps: number, per: number): [number, number][] {
  const out: [number, number][] = [];
  for (let t0 = 0; t0 < steps; t0 += per) out.push([t0, Math.min(steps, t0 + per)]);
  return out;
}

export interface GruOptions {
  /** Time steps per pass, forward and backward (the iteration budget's when omitted). */
  stepsPerPass?: number;
}

/**
 * Every hidden state of a GRU over padded sequences: gx [B, T, 3H] is the input projection
 * x·W_ihᵀ + b_ih (gates r, z, n), w_hh [3H, H] and b_hh [3H] the recurrent weights, h₀ = 0.
 * Returns hs [B, T, H]; past lengths[b] the state is carried, so hs[b, T-1] is the last valid one.
 */
export function gruSequence(
  gx: Tensor,
  wHH: Tensor,
  bHH: Tensor,
  lengths: Int32Array,
  opts: GruOptions = {},
): Tensor {
  const [batch, steps, hidden] = checkGru(gx, wHH, bHH, lengths);
  const e = gx.engine;
  const hs = e.empty([batch, steps, hidden], "f32", "gru states");
  const work = e.empty([batch, steps, 4 * hidden], "f32", "gru gates");
  const hprev = e.empty([batch, steps, hidden], "f32", "gru previous states");
  const lens = e.tensor(lengths, [batch], "i32", "gru lengths");
  const params = { batch, steps, hidden };
  if (batch * steps > 0) {
    for (const [t0, t1] of passes(steps, opts.stepsPerPass ?? gruStepsPerPass(hidden, false))) {
      GRU_FORWARD_KERNEL.dispatch(e.gpu, {
        params: { ...params, t0, t1 },
        buffers: {
          gx: gx.storage,
          w_hh: wHH.storage,
          b_hh: bHH.storage,
          lengths: lens.storage,
          hs: hs.storage,
          work: work.storage,
          hprev: hprev.storage,
        },
        workgroups: [Math.ceil(batch / SEQ)],
      });
    }
  }
  // The saved gates and states live in the enclosing scope, which also runs the backward.
  return e.record({
    op: "gruSequence",
    inputs: [gx, wHH, bHH],
    output: hs,
    backward: (dhs) =>
      gruBackward(gx, wHH, bHH, [work, hprev, lens], dhs, {
        ...params,
        stepsPerPass: opts.stepsPerPass,
      }),
  });
}

function gruBackward(
  gx: Tensor,
  wHH: Tensor,
  bHH: Tensor,
  [work, hprev, lens]: Tensor[],
  dhs: Tensor,
  { batch, steps, hidden, stepsPerPass }: {
    batch: number;
    steps: number;
    hidden: number;
    stepsPerPass?: number;
  },
): (Tensor | null)[] {
  const e = gx.engine;
  const carry = e.zeros([batch, hidden], "f32", "gru carried gradient");
  const dgx = e.empty(gx.shape, "f32", "gru dgx");
  const dgh = e.empty(gx.shape, "f32", "gru dgh");
  if (batch * steps > 0) {
    for (const [t0, t1] of passes(steps, stepsPerPass ?? gruStepsPerPass(hidden, true)).reverse()) {
      GRU_BACKWARD_KERNEL.dispatch(e.gpu, {
        params: { batch, steps, hidden, t0, t1 },
        buffers: {
          w_hh: wHH.storage,
          lengths: lens.storage,
          work: work.storage,
          hprev: hprev.storage,
          dhs: dhs.storage,
          carry: carry.storage,
          dgx: dgx.storage,
          dgh: dgh.storage,
        },
        workgroups: [Math.ceil(batch / SEQ)],
      });
    }
  }
  carry.dispose();
  const rows = batch * steps;
  const dgh2 = reshape(dgh, [rows, 3 * hidden]);
  const dW = wHH.requiresGrad
    ? matmul(dgh2, reshape(hprev, [rows, hidden]), { transA: true })
    : null;
  const db = bHH.requiresGrad ? columnSums(dgh2) : null;
  dgh2.dispose();
  dgh.dispose();
  if (!gx.requiresGrad) dgx.dispose();
  return [gx.requiresGrad ? dgx : null, dW, db];
}
