/** Elementwise ops (unary activations, add/sub/mul, scale) with their backward kernels. */
import unaryShader from "../../../shaders/unary.wgsl" with { type: "text" };
import binaryShader from "../../../shaders/binary.wgsl" with { type: "text" };
import accumulateShader from "../../../shaders/accumulate.wgsl" with { type: "text" };
import fillShader from "../../../shaders/fill.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { assertDType, assertSameShape, groupsFor, params, rowWindows } from "../kernel.ts";

/**
 * Dispatches a flat elementwise kernel over tensors of equal size, one binding window at a time,
 * so tensors larger than one storage binding work.
 */
export function dispatchFlat(
  engine: Engine,
  kernel: string,
  shader: string,
  entry: string,
  tensors: Tensor[],
  extra: (number | { f32: number })[],
  constants?: Record<string, number>,
): void {
  const n = tensors[0].size;
  for (const w of rowWindows(engine, n, 4)) {
    engine.gpu.dispatch({
      kernel,
      shader,
      entry,
      constants,
      params: params(w.rows, ...extra),
      bindings: tensors.map((t) => ({ alloc: t.storage, offset: w.offset, size: w.size })),
      workgroups: groupsFor(engine, w.rows),
    });
  }
}

const UNARY = { relu: 0, gelu: 1, sigmoid: 2, tanh: 3, scale: 4, softplus: 5 } as const;
type UnaryOp = keyof typeof UNARY;

function unary(op: UnaryOp, x: Tensor, alpha = 0): Tensor {
  assertDType(op, x, "f32");
  const e = x.engine;
  const y = e.empty(x.shape, "f32", op);
  const constants = { OP: UNARY[op] };
  dispatchFlat(e, `${op} forward`, unaryShader, "forward", [x, y], [{ f32: alpha }], constants);
  return e.record({
    op,
    inputs: [x],
    output: y,
    backward: (dy) => {
      const dx = e.empty(x.shape, "f32", `d${op}`);
      dispatchFlat(
        e,
        `${op} backward`,
        unaryShader,
        "backward",
        [x, dy, dx],
        [{ f32: alpha }],
        constants,
      );
      return [dx];
    },
  });
}

export const relu = (x: Tensor) => unary("relu", x);
export const gelu = (x: Tensor) => unary("gelu", x);
export const sigmoid = (x: Tensor) => unary("sigmoid", x);
export const tanh = (x: Tensor) => unary("tanh", x);
export const scale = (x: Tensor, alpha: number) => unary("scale", x, alpha);
/** log(1 + eˣ), computed without overflow. */
export const softplus = (x: Tensor) => unary("softplus", x);

const BINARY = { add: 0, sub: 1, mul: 2 } as const;

function binary(op: keyof typeof BINARY, a: Tensor, b: Tensor): Tensor {
  assertDType(op, a, "f32");
  assertDType(op, b, "f32");
  assertSameShape(op, a, b);
  const e = a.engine;
  const out = e.empty(a.shape, "f32", op);
  dispatchFlat(e, op, binaryShader, "forward", [a, b, out], [0], { OP: BINARY[op] });
  return e.record({
    op,
    inputs: [a, b],
    output: out,
    backward: (g) => {
      if (op === "add") return [g, g];
      if (op === "sub") return [g, b.requiresGrad ? scale(g, -1) : null];
      return [a.requiresGrad ? mul(g, b) : null, b.requiresGrad ? mul(g, a) : null];
    },
  });
}

export const add = (a: Tensor, b: Tensor) => binary("add", a, b);
export const sub = (a: Tensor, b: Tensor) => binary("sub", a, b);
export const mul = (a: Tensor, b: Tensor) => binary("mul", a, b);

/** acc += alpha · g in place (no tape). */
export function accumulate(acc: Tensor, g: Tensor, alpha = 1): void {
  assertSameShape("accumulate", acc, g);
  dispatchFlat(acc.engine, "accumulate", accumulateShader, "main", [acc, g], [{ f32: alpha }]);
}

/** Sets every element of t to value in place (no tape). */
export function fill(t: Tensor, value: number): void {
  assertDType("fill", t, "f32");
  dispatchFlat(t.engine, "fill", fillShader, "main", [t], [{ f32: value }]);
}

/** A copy with its own buffer (no tape). */
export function clone(t: Tensor): Tensor {
  const c = t.engine.empty(t.shape, t.dtype, t.name);
  if (t.size) t.engine.gpu.copy(t.storage, 0, c.storage, 0, t.size * 4);
  return c;
}
