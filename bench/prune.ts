/**
 * Inference throughput of a dense model against the same model with 8:16 activation pruning
 * (src/prune) on its linear layers, measured in the same run and alternated repetition by
 * repetition so that a neighbour's load on shared cores falls on both alike:
 * - language model: prefill tokens/s (one forward of a prompt into a kv cache) and batch-1
 *   decoding tokens/s (greedy; the pruned model on the layer-by-layer path), pruning included;
 * - SASRec: users/s of full-catalogue ranking (src/train/evaluate.ts).
 * Random weights: throughput does not depend on what the weights learned.
 */
import { generate } from "../src/models/generate.ts";
import type { Llama } from "../src/models/llama.ts";
import type { SasRec } from "../src/models/sasrec.ts";
import type { LinearInputTransform } from "../src/nn/linear.ts";
import type { Module } from "../src/nn/module.ts";
import {
  type ActivationPruningConfig,
  applyActivationPruning,
  linearLayers,
  removeActivationPruning,
} from "../src/prune/activation.ts";
import { evaluateRanking } from "../src/train/evaluate.ts";
import { median } from "./util.ts";

export interface Throughput {
  dense: number;
  sparse: number;
  /** sparse / dense. */
  ratio: number;
  /** Every repetition's figure, for the spread. */
  denseRuns: number[];
  sparseRuns: number[];
}

/**
 * Runs `measure` (a rate) on the dense model and with pruning on, alternately `reps` times after
 * one untimed pass of each (pipeline compiles); the medians and their ratio.
 */
export async function denseAgainstSparse(
  model: Module,
  config: ActivationPruningConfig,
  reps: number,
  measure: () => Promise<number>,
  onRep: (rep: number) => void = () => {},
): Promise<Throughput> {
  const pruners = await applyActivationPruning(model, config);
  const sparseOn = () => pruners.forEach((p, name) => layerOf(model, name, p));
  const denseOn = () => removeTransforms(model, pruners);
  const denseRuns: number[] = [];
  const sparseRuns: number[] = [];
  try {
    denseOn();
    await measure();
    sparseOn();
    await measure();
    for (let r = 0; r < reps; r++) {
      denseOn();
      denseRuns.push(await measure());
      sparseOn();
      sparseRuns.push(await measure());
      onRep(r + 1);
    }
  } finally {
    removeActivationPruning(model, pruners);
  }
  const dense = median(denseRuns);
  const sparse = median(sparseRuns);
  return { dense, sparse, ratio: sparse / dense, denseRuns, sparseRuns };
}

/** Puts pruner `t` back on the layer named `name`. */
function layerOf(model: Module, name: string, t: LinearInputTransform): void {
  const l = linearLayers(model).find((x) => x.name === name);
  if (l) l.layer.inputTransform = t;
}

/** The dense product on every layer that has a pruner (the pruners are kept). */
function removeTransforms(model: Module, pruners: Map<string, unknown>): void {
  for (const l of linearLayers(model)) if (pruners.has(l.name)) l.layer.inputTransform = null;
}

/** Prefill tokens/s of one prompt into a fresh kv cache. */
export function prefillRate(model: Llama, prompt: Int32Array): () => Promise<number> {
  const e = model.engine;
  return async () => {
    const t0 = performance.now();
    const cache = model.newCache(1, prompt.length);
    const logits = model.prefill(e.tensor(prompt, [1, prompt.length], "i32"), cache);
    await logits.read();
    logits.dispose();
    cache.dispose();
    return prompt.length / ((performance.now() - t0) / 1000);
  };
}

/** Batch-1 greedy decoding tokens/s after a prompt (the first token, from the prefill, not timed). */
export function decodeRate(
  model: Llama,
  prompt: Int32Array,
  tokens: number,
): () => Promise<number> {
  return async () => {
    const g = await generate(model, Array.from(prompt), {
      maxTokens: tokens + 1,
      temperature: 0,
      topK: 0,
      seed: 0,
    });
    return (g.ids.length - 1) / g.decodeSeconds;
  };
}

/** Users/s of full-catalogue ranking of `users` users with random histories of maxLen items. */
export function rankingRate(model: SasRec, users: number, seed: number): () => Promise<number> {
  const { items, maxLen } = model.config;
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 1 + (s % items);
  };
  const examples = Array.from({ length: users }, (_, user) => ({
    user,
    history: Int32Array.from({ length: maxLen }, next),
    target: next(),
  }));
  return async () => {
    const t0 = performance.now();
    await evaluateRanking(model, examples, { keepSeen: true, ks: [10] });
    return users / ((performance.now() - t0) / 1000);
  };
}
