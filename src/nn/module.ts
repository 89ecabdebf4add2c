/** A layer: named parameters and named sub-layers, so that checkpoints get dotted names. */
import type { Tensor } from "../tensor/tensor.ts";

/** What a forward pass needs to know besides its inputs. */
export interface ForwardContext {
  training: boolean;
  /** Seed and step of the counter-based dropout masks (same values → same masks). */
  seed: number;
  step: number;
}

export const EVAL: ForwardContext = { training: false, seed: 0, step: 0 };

export abstract class Module {
  protected params: Record<string, Tensor> = {};
  protected children: Record<string, Module> = {};

  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, t] of Object.entries(this.params)) out.push([prefix + k, t]);
    for (const [k, m] of Object.entries(this.children)) {
      out.push(...m.namedParameters(`${prefix}${k}.`));
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  dispose(): void {
    for (const t of this.parameters()) {
      t.zeroGrad();
      t.dispose();
    }
  }
}
