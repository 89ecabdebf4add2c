/** Elementwise ops (unary activations, add/sub/mul, scale) with their backward kernels. */
import unaryShader from "../../../shaders/unary.wgsl" with { type: "text" };
import binaryShader from "../../../shaders/binary.wgsl" with { type: "text" };
import accumulateShader from "../../../shaders/accumulate.wgsl" with { type: "text" };
import fillShader from "../../../shaders/fill.wgsl" with { type: "text" };
import type { Binding } from "../../gpu/gpu.ts";
import type { Engine } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import {
  assertDType,
  assertSameShape,
  declareKernel,
  groupsFor,
  type Kernel,
  type KernelCall,
  rowWindows,
} from "../kernel.ts";

const UNARY_KERNEL = declareKernel({
  name: "unary",
  source: unaryShader,
  params: { n: "u32", alpha: "f32" },
  buffers: ["x", "y", "dx"],
});
const BINARY_KERNEL = declareKernel({
  name: "binary",
  source: binaryShader,
  params: { n: "u32", alpha: "f32" },
  buffers: ["a", "b", "out"],
});
const ACCUMULATE_KERNEL = declareKernel({
  name: "accumulate",
  source: accumulateShader,
  params: { n: "u32", alpha: "f32" },
  buffers: ["acc", "g"],
});
const FILL_KERNEL = declareKernel({
  name: "fill",
  source: fillShader,
  params: { n: "u32", value: "f32" },
  buffers: ["out"],
});

/** A flat kernel's call: its parameter `n` (elements in the window) and grid come from the size. */
export type FlatCall<P extends string, B extends string> =
  & Omit<KernelCall<P, B>, "params" | "buffers" | "workgroups">
  & {
    params: Omit<KernelCall<P, B>["params"], "n">;
    /** Tensors of equal size, bound one window at a time. */
    tensors: { readonly [K in B]?: Tensor };
    /** Tensors bound in full for every window. */
    whole?: { readonly [K in B]?: Tensor };
    /**
     * The entry takes vec4s (`n` counts them): the caller checked that the size is a multiple of
     * 4. llvmpipe fetches storage lane by lane, and a vec4 shares one fetch's per-lane overhead
     * among four floats (~1.4× faster for an in-place add).
     */
    vec4?: boolean;
  };

/**
 * Dispatches a flat elementwise kernel over tensors of equal size, one binding window at a time,
 * so tensors larger than one storage binding work.
 */
export function dispatchFlat<P extends string, B extends string>(
  engine: Engine,
  kernel: Kernel<P, B>,
  { tensors, whole = {}, params, vec4, ...call }: FlatCall<P, B>,
): void {
  const named = Object.entries(tensors) as [B, Tensor][];
  const width = vec4 ? 4 : 1;
  const n = named[0][1].size / width;
  for (const w of rowWindows(engine, n, 4 * width)) {
    const buffers: { [K in B]?: Binding } = {};
    for (const [name, t] of Object.entries(whole) as [B, Tensor][]) buffers[name] = t.storage;
    for (const [name, t] of named) {
      buffers[name] = { alloc: t.storage, offset: w.offset, size: w.size };
    }
    kernel.dispatch(engine.gpu, {
      ...call,
      params: { ...params, n: w.rows } as KernelCall<P, B>["params"],
      buffers,
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
  dispatchFlat(e, UNARY_KERNEL, {
    entry: "forward",
    label: `${op} forward`,
    constants,
    params: { alpha },
    tensors: { x, y },
  });
  return e.record({
    op,
    inputs: [x],
    output: y,
    backward: (dy) => {
      const dx = e.empty(x.shape, "f32", `d${op}`);
      // dy is bound where the forward's output was.
      dispatchFlat(e, UNARY_KERNEL, {
        entry: "backward",
        label: `${op} backward`,
        constants,
        params: { alpha },
        tensors: { x, y: dy, dx },
      });
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
  const vec4 = a.size > 0 && a.size % 4 === 0;
  dispatchFlat(e, BINARY_KERNEL, {
    entry: vec4 ? "forward4" : "forward",
    vec4,
    label: op,
    constants: { OP: BINARY[op] },
    params: { alpha: 0 },
    tensors: { a, b, out },
  });
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
  const vec4 = acc.size > 0 && acc.size % 4 === 0;
  dispatchFlat(acc.engine, ACCUMULATE_KERNEL, {
    entry: vec4 ? "main4" : "main",
    params: { alpha },
    tensors: { acc, g },
    vec4,
  });
}

/** Sets every element of t to value in place (no tape). */
export function fill(t: Tensor, value: number): void {
  assertDType("fill", t, "f32");
  dispatchFlat(t.engine, FILL_KERNEL, { params: { value }, tensors: { out: t } });
}

/** A copy with its own buffer (no tape). */
export function clone(t: Tensor): Tensor {
  const c = t.engine.empty(t.shape, t.dtype, t.name);
  if (t.size) t.engine.gpu.copy(t.storage, 0, c.storage, 0, t.size * 4);
  return c;
}
