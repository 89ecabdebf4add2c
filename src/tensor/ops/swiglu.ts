/** SwiGLU's gate silu(a) · b, fused: one kernel forward, one for both gradients. */
import shader from "../../../shaders/swiglu.wgsl" with { type: "text" };
import type { Tensor } from "../tensor.ts";
import { assertDType, assertSameShape, declareKernel } from "../kernel.ts";
import { dispatchFlat } from "./elementwise.ts";

const SWIGLU_KERNEL = declareKernel({
  name: "swiglu",
  source: shader,
  params: { n: "u32" },
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
      params: {},
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
          params: {},
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
