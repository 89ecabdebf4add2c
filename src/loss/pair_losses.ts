/**
 * Losses over a similarity matrix of unit vectors, one kernel for three objectives: CoLES's
 * margin loss with hard negatives, InfoNCE over several positives, and SigLIP's sigmoid loss with
 * a learnable temperature and bias. A pair is positive when the rows' groups (clients) agree.
 */
import shader from "../../shaders/pair_losses.wgsl" with { type: "text" };
import type { Tensor } from "../tensor/tensor.ts";
import { ShapeError, shapeString } from "../tensor/tensor.ts";
import { assertDType, declareKernel, groupsFor } from "../tensor/kernel.ts";
import { columnSums } from "../tensor/ops/reduce.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

const PAIR_LOSSES_KERNEL = declareKernel({
  name: "pair losses",
  source: shader,
  params: {
    rows: "u32",
    cols: "u32",
    skip_self: "u32",
    neg_count: "u32",
    margin: "f32",
    temperature: "f32",
  },
  buffers: ["s", "group_a", "group_b", "scalars", "loss", "dloss", "ds", "dscalars"],
});

const MODES = { margin: 0, infonce: 1, siglip: 2 } as const;
export type PairLossMode = keyof typeof MODES;
/** The kernel keeps at most this many hard negatives per row. */
export const MAX_HARD_NEGATIVES = 16;

export interface PairLossOptions {
  mode: PairLossMode;
  /** Group (client) of each row and of each column. */
  groupsA: Int32Array;
  groupsB: Int32Array;
  /** The diagonal is no pair (a matrix of a batch against itself). */
  skipSelf: boolean;
  /** margin: the margin on distances and the hard negatives kept per row. */
  margin?: number;
  negatives?: number;
  /** infonce: τ. */
  temperature?: number;
  /** siglip: (t', b) [2], logit = s · e^{t'} + b; receives a gradient. */
  scalars?: Tensor;
}

function check(sim: Tensor, o: PairLossOptions): void {
  assertDType("pairLoss", sim, "f32");
  const [rows, cols] = sim.rank === 2 ? sim.shape : [-1, -1];
  if (rows !== o.groupsA.length || cols !== o.groupsB.length) {
    throw new ShapeError(
      "pairLoss",
      `similarities ${
        shapeString(sim.shape)
      } against ${o.groupsA.length} row and ${o.groupsB.length} column groups`,
    );
  }
  const negatives = o.negatives ?? 0;
  if (!(Number.isInteger(negatives) && negatives >= 0 && negatives <= MAX_HARD_NEGATIVES)) {
    throw new RangeError(`pairLoss: negatives ${negatives} is outside [0, ${MAX_HARD_NEGATIVES}]`);
  }
  if (cols * (3 + negatives) > LOOP_BUDGET) {
    throw new RangeError(`pairLoss: ${cols} columns is over one invocation's loop budget`);
  }
  if (o.mode === "siglip" && !o.scalars) throw new Error("pairLoss: siglip needs its scalars");
}

/** Per-row losses [rows] (see shaders/pair_losses.wgsl), on the tape. */
export function pairLossRows(sim: Tensor, o: PairLossOptions): Tensor {
  check(sim, o);
  const e = sim.engine;
  const [rows, cols] = sim.shape;
  const params = {
    rows,
    cols,
    skip_self: o.skipSelf ? 1 : 0,
    neg_count: o.negatives ?? 0,
    margin: o.margin ?? 0,
    temperature: o.temperature ?? 1,
  };
  const groupA = e.tensor(o.groupsA, [rows], "i32", "pair groups a");
  const groupB = e.tensor(o.groupsB, [cols], "i32", "pair groups b");
  const scalars = o.scalars ?? e.zeros([2], "f32", "pair scalars (unused)");
  const loss = e.empty([rows], "f32", "pair losses");
  const call = (entry: string, buffers: Record<string, Tensor>) =>
    PAIR_LOSSES_KERNEL.dispatch(e.gpu, {
      entry,
      label: `pair losses ${o.mode} ${entry}`,
      constants: { MODE: MODES[o.mode] },
      params,
      buffers: Object.fromEntries(
        Object.entries({ s: sim, group_a: groupA, group_b: groupB, scalars, ...buffers })
          .map(([k, t]) => [k, t.storage]),
      ),
      workgroups: groupsFor(e, rows, 64),
    });
  if (rows) {
    // The forward entry shares row_loss with the backward, so it binds the gradient buffers
    // too; one-element stand-ins do (the forward never writes them).
    const unused = e.empty([1], "f32", "pair losses unused gradient");
    call("forward", { loss, ds: unused, dscalars: e.empty([1], "f32", "unused") });
  }
  const inputs = o.scalars ? [sim, o.scalars] : [sim];
  return e.record({
    op: `pairLoss ${o.mode}`,
    inputs,
    output: loss,
    backward: (dloss) => {
      const ds = e.zeros(sim.shape, "f32", "pair ds");
      const dscalars = e.zeros([Math.max(rows, 1), 2], "f32", "pair dscalars");
      if (rows) call("backward", { dloss, ds, dscalars });
      const dScalars = o.scalars?.requiresGrad ? columnSums(dscalars) : null;
      dscalars.dispose();
      return o.scalars ? [ds, dScalars] : [ds];
    },
  });
}
