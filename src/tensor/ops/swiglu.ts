/** SwiGLU's gate silu(a) · b, fused: one kernel forward, one for both gradients. */
import shader from "../../../shaders/swiglu.wgsl" with { type: "text" };
import type { BufferWindow } from "../../gpu/gpu.ts";
import type { Engine } from "../engine.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { assertDType, assertSameShape, declareKernel, groupsFor } from "../kernel.ts";
import { dispatchFlat } from "./elementwise.ts";

const SWIGLU_KERNEL = declareKernel({
  name: "swiglu",
  source: shader,
  params: { n: "u32", half: "u32", inv_half: "f32" },
  buffers: ["a", "b", "out", "g", "da", "db"],
});

/** silu(a) · b = a · σ(a) · b elementwise, a and b of one shape (Llama: gate and up). */
export function siluGate(a: Tensor, b: Tensor): Tensor {
  assertDType("siluGate", a, "f32");
  assertDType("siluGate", b, "f32");
  assertSameShape("siluGate", a, b);
  const e = a.engine;
  const out = e.empty(a.shape, "f32", "siluGate");
  const vec4 = out.size % 4 === 0;
  if (out.size) {
    dispatchFlat(e, SWIGLU_KERNEL, {
      entry: vec4 ? "forward4" : "forward",
      vec4,
      label: "swiglu forward",
      params: { half: 0, inv_half: 0 },
      tensors: { a, b, out },
    });
  }
  return e.record({
    op: "siluGate",
    inputs: [a, b],
    output: out,
    backward: (g) => {
      const da = e.empty(a.shape, "f32", "siluGate da");
      const db = e.empty(b.shape, "f32", "siluGate db");
      if (g.size) {
        dispatchFlat(e, SWIGLU_KERNEL, {
          entry: vec4 ? "backward4" : "backward",
          vec4,
          label: "swiglu backward",
          params: { half: 0, inv_half: 0 },
          tensors: { a, b, g, da, db },
        });
      }
      // One kernel writes both; a gradient nobody asked for is freed.
      if (!a.requiresGrad) da.dispose();
      if (!b.requiresGrad) db.dispose();
      return [a.requiresGrad ? da : null, b.requiresGrad ? db : null];
    },
  });
}

/**
 * silu(gate) · up for x [..., 2·half] holding each row's gate in its first half and its up in the
 * second: the output of one product against the gate and up weights stacked, so that the
 * feed-forward's two input products (and their gradients) are one. → [..., half]; the backward
 * writes both halves of dx in one kernel.
 */
export function siluGatePacked(x: Tensor): Tensor {
  assertDType("siluGatePacked", x, "f32");
  const width = x.rank === 0 ? 0 : x.shape[x.rank - 1];
  if (x.rank === 0 || width % 2 !== 0) {
    throw new ShapeError("siluGatePacked", `x ${shapeString(x.shape)} has no even last axis`);
  }
  const half = width / 2;
  const rows = half === 0 ? 0 : x.size / width;
  const e = x.engine;
  const out = e.empty([...x.shape.slice(0, -1), half], "f32", "siluGate");
  dispatchPacked(e, "forward", rows, half, { a: x, out });
  return e.record({
    op: "siluGatePacked",
    inputs: [x],
    output: out,
    backward: (g) => {
      const dx = e.empty(x.shape, "f32", "siluGate dx");
      dispatchPacked(e, "backward", rows, half, { a: x, g, da: dx });
      return [dx];
    },
  });
}

type PackedBuffer = "a" | "out" | "g" | "da";
/** The packed entries' tensors of rows × 2·half floats; the others have rows × half. */
const WIDE: ReadonlySet<PackedBuffer> = new Set(["a", "da"]);

function dispatchPacked(
  e: Engine,
  entry: "forward" | "backward",
  rows: number,
  half: number,
  tensors: { [K in PackedBuffer]?: Tensor },
): void {
  const vec4 = half % 4 === 0;
  const unit = vec4 ? 4 : 1;
  for (const w of packedWindows(e, rows, half)) {
    const buffers: { [K in PackedBuffer]?: BufferWindow } = {};
    for (const [name, t] of Object.entries(tensors) as [PackedBuffer, Tensor][]) {
      const rowBytes = (WIDE.has(name) ? 8 : 4) * half;
      buffers[name] = { alloc: t.storage, offset: w.row * rowBytes, size: w.rows * rowBytes };
    }
    const n = (w.rows * half) / unit;
    SWIGLU_KERNEL.dispatch(e.gpu, {
      entry: `packed_${entry}${vec4 ? "4" : ""}`,
      label: `swiglu packed ${entry}`,
      params: { n, half: half / unit, inv_half: unit / half },
      buffers,
      workgroups: groupsFor(e, n),
    });
  }
}

/**
 * Windows of whole rows over which x [rows, 2·half] and out [rows, half] each fit one binding and
 * start at an aligned offset (out's offset, half x's, decides).
 */
function packedWindows(e: Engine, rows: number, half: number): { row: number; rows: number }[] {
  const rowBytes = 8 * half;
  const { maxStorageBufferBindingSize: maxBind, minStorageBufferOffsetAlignment: align } =
    e.gpu.limits;
  if (rows === 0) return [];
  if (rows * rowBytes <= maxBind) return [{ row: 0, rows }];
  // align is a power of two: out's rows of 4·half bytes reach an aligned offset every
  // align / (their largest power-of-two factor, at most align) rows.
  const outRowBytes = 4 * half;
  const unit = align / Math.min(align, outRowBytes & -outRowBytes);
  const fit = Math.floor(maxBind / rowBytes);
  const step = fit - (fit % unit);
  if (step <= 0) throw new Error(`siluGatePacked: a row of ${rowBytes} bytes does not fit`);
  const out: { row: number; rows: number }[] = [];
  for (let row = 0; row < rows; row += step) out.push({ row, rows: Math.min(step, rows - row) });
  return out;
}
