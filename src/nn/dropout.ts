/** Dropout whose mask is a pure function of (seed, step, site), so steps replay bit for bit. */
import type { Tensor } from "../tensor/tensor.ts";
import { dropout } from "../tensor/ops/dropout.ts";
import type { ForwardContext } from "./module.ts";

export class Dropout {
  /** Distinguishes the masks of different dropout layers within one step. */
  private readonly site: number;

  /** `name` must be unique within the model: it keys this layer's masks. */
  constructor(readonly p: number, name: string) {
    if (!(p >= 0 && p < 1)) {
      throw new RangeError(`${name}: dropout probability ${p} is not in [0, 1)`);
    }
    this.site = fnv1a(name);
  }

  forward(x: Tensor, ctx: ForwardContext): Tensor {
    if (!this.active(ctx)) return x;
    return dropout(x, this.p, this.seed(ctx), ctx.step);
  }

  /** Whether this layer drops anything in this pass. */
  active(ctx: ForwardContext): boolean {
    return ctx.training && this.p > 0;
  }

  /** The generator key of this layer's masks in this pass, for kernels that drop in place. */
  seed(ctx: ForwardContext): number {
    return mixSeed(ctx.seed, this.site);
  }
}

function mixSeed(seed: number, site: number): number {
  let h = (seed ^ Math.imul(site, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
