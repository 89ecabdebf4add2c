/** Matrix products in all four transpose variants, batched, with their backward. */
import shader from "../../../shaders/matmul_lead.wgsl" with { type: "text" };
import type { Tensor } from "../tensor.ts";
import { ShapeError, shapeString } from "../tensor.ts";
import { assertDType, params, rowWindows } from "../kernel.ts";
import { reshape } from "./shape.ts";

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * op(A)·op(B): [M,K]·[K,N] → [M,N]; batched [B,M,K]·[B,K,N] → [B,M,N]; a 3-D A with a 2-D B
 * (not transposed) is flattened over its leading dims (a linear layer). Transposes apply to the
 * last two dims.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  assertDType("matmul", a, "f32");
  assertDType("matmul", b, "f32");
  if (a.rank === 3 && b.rank === 2 && !transA) {
    const [batch, m, k] = a.shape;
    const flat = matmul(reshape(a, [batch * m, k]), b, opts);
    return reshape(flat, [batch, m, flat.shape[1]]);
  }
  const mismatch = () =>
    new ShapeError(
      "matmul",
      `cannot multiply ${shapeString(a.shape)}${transA ? "ᵀ" : ""} by ${shapeString(b.shape)}${
        transB ? "ᵀ" : ""
      }`,
    );
  if (
    !((a.rank === 2 && b.rank === 2) || (a.rank === 3 && b.rank === 3 && a.shape[0] === b.shape[0]))
  ) {
    throw mismatch();
  }
  const batched = a.rank === 3;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transA ? [ac, ar] : [ar, ac];
  const [k2, n] = transB ? [bc, br] : [br, bc];
  if (k !== k2) throw mismatch();
  const batch = batched ? a.shape[0] : 1;
  const e = a.engine;
  const out = e.empty(batched ? [batch, m, n] : [m, n], "f32", "matmul");
  product(a, b, out, { m, n, k, batch, transA, transB });
  return e.record({
    op: "matmul",
    inputs: [a, b],
    output: out,
    backward: (g) => [
      a.requiresGrad
        ? transA
          ? matmul(b, g, { transA: transB, transB: true })
          : matmul(g, b, { transB: !transB })
        : null,
      b.requiresGrad
        ? transB
          ? matmul(g, a, { transA: true, transB: transA })
          : matmul(a, g, { transA: !transA })
        : null,
    ],
  });
}

interface Dims {
  m: number;
  n: number;
  k: number;
  batch: number;
  transA: boolean;
  transB: boolean;
}

/**
 * Dispatches the kernel. Operands bigger than one binding are windowed along M (a row-major A
 * and C) and along N (a transposed B, whose rows are C's columns).
 */
function product(a: Tensor, b: Tensor, out: Tensor, d: Dims): void {
  const e = a.engine;
  if (d.m === 0 || d.n === 0) return;
  if (d.k === 0) {
    e.gpu.clear(out.storage);
    return;
  }
  const rowsA = !d.transA && d.batch === 1;
  const rowsB = d.transB && d.batch === 1;
  const mWindows = rowsA ? rowWindows(e, d.m, Math.max(d.k, d.n) * 4) : [whole(d.m)];
  const nWindows = rowsB ? rowWindows(e, d.n, d.k * 4) : [whole(d.n)];
  const lda = d.transA ? d.m : d.k;
  const ldb = d.transB ? d.k : d.n;
  for (const mw of mWindows) {
    for (const nw of nWindows) {
      const aBind = rowsA
        ? { alloc: a.storage, offset: mw.row * d.k * 4, size: mw.rows * d.k * 4 }
        : a.storage;
      const bBind = rowsB
        ? { alloc: b.storage, offset: nw.row * d.k * 4, size: nw.rows * d.k * 4 }
        : b.storage;
      const cBind = rowsA
        ? { alloc: out.storage, offset: mw.row * d.n * 4, size: mw.rows * d.n * 4 }
        : out.storage;
      e.gpu.dispatch({
        kernel: `matmul ${d.transA ? "t" : "n"}${d.transB ? "t" : "n"}`,
        shader,
        constants: { TRANS_A: d.transA ? 1 : 0, TRANS_B: d.transB ? 1 : 0 },
        params: params(
          mw.rows,
          nw.rows,
          d.k,
          lda,
          ldb,
          d.n,
          0,
          0,
          nw.row,
          d.m * d.k,
          d.k * d.n,
          d.m * d.n,
        ),
        bindings: [aBind, bBind, cBind],
        workgroups: [Math.ceil(nw.rows / 64), Math.ceil(mw.rows / 64), d.batch],
      });
    }
  }
}

function whole(rows: number) {
  return { row: 0, rows, offset: 0, size: 0 };
}
