/**
 * Rotary position embeddings (RoPE) on adjacent feature pairs, the order of llama2.c and Meta's
 * checkpoints. Hugging Face's Llama rotates the two halves of each head instead; its q and k
 * projections are the same weights with their rows permuted per head, so loaders permute
 * (src/models/llama.ts) and one kernel serves both.
 */
import shader from "../../../shaders/rope.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { assertDType, declareKernel } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { dispatchWindowed } from "./windowed.ts";

const ROPE_KERNEL = declareKernel({
  name: "rope",
  source: shader,
  params: { n: "u32", first: "u32", half_d: "u32", half_dh: "u32", dir: "f32" },
  buffers: ["x", "positions", "table", "y"],
});

/**
 * (cos, sin) of pos · θ_i for pos < positions and i < headDim / 2, θ_i = theta^(−2i / headDim),
 * computed in float64: f32 [positions, headDim] with cos at 2i and sin at 2i + 1.
 */
export function rotaryTable(
  engine: Engine,
  positions: number,
  headDim: number,
  theta: number,
): Tensor {
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new RangeError(`rotaryTable: head dimension ${headDim} is not a positive even number`);
  }
  const table = new Float32Array(positions * headDim);
  for (let pos = 0; pos < positions; pos++) {
    for (let i = 0; i < headDim / 2; i++) {
      const angle = pos * theta ** (-(2 * i) / headDim);
      table[pos * headDim + 2 * i] = Math.cos(angle);
      table[pos * headDim + 2 * i + 1] = Math.sin(angle);
    }
  }
  return engine.tensor(table, [positions, headDim], "f32", "rotary table");
}

/**
 * Rotates every head of x [..., D] (heads of table.shape[1] features each) by the angles of its
 * row's position: positions i32 [rows] (rows = x.size / D, made with engine.tensor so that they
 * can be checked against the table), table from rotaryTable. Backward rotates the gradient back.
 */
export function rope(x: Tensor, positions: Tensor, table: Tensor): Tensor {
  assertDType("rope", x, "f32");
  assertDType("rope positions", positions, "i32");
  const headDim = table.shape[1];
  const D = x.rank === 0 ? 0 : x.shape[x.rank - 1];
  if (table.rank !== 2 || D % headDim !== 0) {
    throw new ShapeError(
      "rope",
      `x ${shapeString(x.shape)} is not made of heads of the table's ${
        shapeString(table.shape)
      } width`,
    );
  }
  const rows = D === 0 ? 0 : x.size / D;
  if (positions.size !== rows) {
    throw new ShapeError(
      "rope",
      `positions ${shapeString(positions.shape)} do not give one per row of x ${
        shapeString(x.shape)
      }`,
    );
  }
  const host = positions.host as Int32Array | null;
  if (!host) throw new Error("rope: positions have no host copy; create them with engine.tensor");
  for (let i = 0; i < host.length; i++) {
    if (!(host[i] >= 0 && host[i] < table.shape[0])) {
      throw new RangeError(
        `rope: position ${host[i]} at row ${i} is outside the table's [0, ${table.shape[0]})`,
      );
    }
  }
  const e = x.engine;
  const rotate = (src: Tensor, dir: number, label: string): Tensor => {
    const out = e.empty(src.shape, "f32", label);
    if (src.size === 0) return out;
    // Two pairs per invocation where a head holds an even number of them.
    const quads = headDim % 4 === 0;
    dispatchWindowed(
      e,
      ROPE_KERNEL,
      src.size / (quads ? 4 : 2),
      {
        label,
        entry: quads ? "main4" : "main",
        params: { half_d: D / 2, half_dh: headDim / 2, dir },
        windowed: { x: src, y: out },
        whole: { positions, table },
      },
      quads ? 16 : 8,
    );
    return out;
  };
  return e.record({
    op: "rope",
    inputs: [x],
    output: rotate(x, 1, "rope"),
    backward: (g) => [rotate(g, -1, "rope backward")],
  });
}
