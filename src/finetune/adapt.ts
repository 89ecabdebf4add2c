/**
 * Puts a model in fine-tuning form for one method, on the Linear layers a walker chose:
 * - "gift-sw": every base parameter frozen; per layer a GiftSwLayer (trainable S = W[:, salient],
 *   noise on the rest unless `noise` is off);
 * - "lora": every base parameter frozen; per layer a LoraLayer whose rank matches GIFT-SW's
 *   trainable count on that layer (out · k);
 * - "full": every base parameter trainable, no transform.
 * `Adapted` is the module the trainer sees: the base's parameters under their own names plus the
 * adapters' under `finetune.<layer>.…`, so checkpoints hold both. `merge` folds the adapters into
 * the base weights and puts the layers and gradient flags back as they were.
 */
import type { Linear } from "../nn/linear.ts";
import { Module } from "../nn/module.ts";
import type { GpuAllocation } from "../gpu/allocator.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { GiftSwLayer, layerNoiseSeed, type NoiseClock } from "./gift.ts";
import { LoraLayer, loraRankFor } from "./lora.ts";

export const FINETUNE_METHODS = ["gift-sw", "lora", "full"] as const;
export type FinetuneMethod = typeof FINETUNE_METHODS[number];

/** One layer to adapt: its name, the layer, and (for GIFT-SW) its columns and noise scale. */
export interface LayerPlan {
  name: string;
  layer: Linear;
  /** Salient columns (GIFT-SW), or just their count for LoRA's rank. */
  columns: Int32Array;
  /** Δ_r/2 per row; null: no noise. */
  halfDelta: Float64Array | null;
}

/** The modules the trainer sees: the base model's tree and the adapters beside it. */
export class Adapted extends Module {
  constructor(readonly base: Module, adapters: Record<string, Module>) {
    super();
    // The base's own names, unprefixed, so its checkpoint tensors keep their names.
    const tree = base as unknown as {
      params: Record<string, Tensor>;
      children: Record<string, Module>;
    };
    this.params = { ...tree.params };
    this.children = { ...tree.children };
    if (Object.keys(adapters).length) this.children.finetune = new AdapterSet(adapters);
  }
}

class AdapterSet extends Module {
  constructor(adapters: Record<string, Module>) {
    super();
    this.children = adapters;
  }
}

export interface Adaptation {
  method: FinetuneMethod;
  module: Adapted;
  /** What the optimiser updates. */
  trainable: Tensor[];
  /** Per adapted layer: LoRA ranks (empty for the other methods). */
  ranks: Map<string, number>;
  /** Folds the adapters into the base weights, removes them and restores the gradient flags. */
  merge(): Promise<void>;
}

/** Elements of `tensors`. */
export const elementsOf = (tensors: Tensor[]) => tensors.reduce((n, t) => n + t.size, 0);

/** Bytes the allocator holds for `tensors` (their buffers' size classes, each buffer once). */
export function allocatedBytes(tensors: Tensor[]): number {
  const seen = new Set<GpuAllocation>(tensors.map((t) => t.storage));
  return [...seen].reduce((n, a) => n + a.capacity, 0);
}

export async function adapt(
  model: Module,
  method: FinetuneMethod,
  plans: LayerPlan[],
  opts: { seed: number; clock: NoiseClock },
): Promise<Adaptation> {
  const base = model.parameters();
  const flags = base.map((t) => t.requiresGrad);
  const adapters: Record<string, GiftSwLayer | LoraLayer> = {};
  const ranks = new Map<string, number>();
  if (method !== "full") {
    for (const t of base) t.requiresGrad = false;
    for (const [i, p] of plans.entries()) {
      const [out, inF] = p.layer.weight.shape;
      const a = method === "gift-sw"
        ? await GiftSwLayer.create(p.name, p.layer, {
          columns: p.columns,
          halfDelta: p.halfDelta,
          seed: layerNoiseSeed(opts.seed, i),
          clock: opts.clock,
        })
        : new LoraLayer(
          p.name,
          p.layer,
          loraRankFor(out, inF, out * p.columns.length),
          opts.seed + i,
        );
      if (a instanceof LoraLayer) ranks.set(p.name, a.rank);
      p.layer.weightTransform = a;
      adapters[p.name] = a;
    }
  }
  const module = new Adapted(model, adapters);
  const trainable = method === "full"
    ? base
    : Object.values(adapters).flatMap((a) => a.parameters());
  return {
    method,
    module,
    trainable,
    ranks,
    merge: async () => {
      for (const p of plans) {
        const a = adapters[p.name];
        if (!a) continue;
        await a.merge();
        p.layer.weightTransform = null;
        a.dispose();
      }
      base.forEach((t, i) => (t.requiresGrad = flags[i]));
    },
  };
}
