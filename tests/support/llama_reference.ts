/**
 * A Llama forward in float64 on the host, written from the architecture's definition (llama2.c's
 * run.c and Hugging Face's modeling_llama), independent of the GPU code: the oracle of the model
 * tests. Weights are looked up by Hugging Face name; `rotary` says how each head's rotary pairs
 * are laid out: adjacent features (llama2.c, Meta) or the two halves (Hugging Face).
 */
import type { LlamaConfig } from "../../src/models/llama.ts";

export type RotaryLayout = "adjacent" | "half";
export type ReferenceWeights = (name: string) => ArrayLike<number>;

/** y = W x for W [out, in] row-major. */
function linear(w: ArrayLike<number>, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += w[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: ArrayLike<number>, eps: number): Float64Array {
  let q = 0;
  for (const v of x) q += v * v;
  const r = 1 / Math.sqrt(q / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

/** Rotates every head of x in place for position pos. */
function rotate(
  x: Float64Array,
  pos: number,
  headDim: number,
  c: LlamaConfig,
  rotary: RotaryLayout,
) {
  const half = headDim / 2;
  for (let h = 0; h < x.length / headDim; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * c.ropeTheta ** (-(2 * i) / headDim);
      const [a, b] = rotary === "adjacent"
        ? [h * headDim + 2 * i, h * headDim + 2 * i + 1]
        : [h * headDim + i, h * headDim + i + half];
      const [x0, x1] = [x[a], x[b]];
      x[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
      x[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
    }
  }
}

/** Logits [vocab] at every position of one sequence of token ids (positions from 0). */
export function referenceLogits(
  c: LlamaConfig,
  w: ReferenceWeights,
  ids: readonly number[],
  rotary: RotaryLayout = "adjacent",
): Float64Array[] {
  const { dim, heads, kvHeads, hidden, vocab } = c;
  const headDim = dim / heads;
  const kvDim = headDim * kvHeads;
  const embed = w("model.embed_tokens.weight");
  let xs = ids.map((id) => Float64Array.from({ length: dim }, (_, i) => embed[id * dim + i]));
  for (let l = 0; l < c.layers; l++) {
    const p = (n: string) => w(`model.layers.${l}.${n}`);
    const normed = xs.map((x) => rmsNorm(x, p("input_layernorm.weight"), c.normEps));
    const q = normed.map((x, t) => {
      const v = linear(p("self_attn.q_proj.weight"), x, dim);
      rotate(v, t, headDim, c, rotary);
      return v;
    });
    const k = normed.map((x, t) => {
      const v = linear(p("self_attn.k_proj.weight"), x, kvDim);
      rotate(v, t, headDim, c, rotary);
      return v;
    });
    const v = normed.map((x) => linear(p("self_attn.v_proj.weight"), x, kvDim));
    xs = xs.map((x, t) => {
      const att = new Float64Array(dim);
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / (heads / kvHeads));
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[t][h * headDim + d] * k[s][g * headDim + d];
          return dot / Math.sqrt(headDim);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) {
          for (let d = 0; d < headDim; d++) {
            att[h * headDim + d] += (e[s] / z) * v[s][g * headDim + d];
          }
        }
      }
      const o = linear(p("self_attn.o_proj.weight"), att, dim);
      const h1 = x.map((xi, i) => xi + o[i]);
      const n2 = rmsNorm(h1, p("post_attention_layernorm.weight"), c.normEps);
      const gate = linear(p("mlp.gate_proj.weight"), n2, hidden);
      const up = linear(p("mlp.up_proj.weight"), n2, hidden);
      const act = gate.map((a, i) => (a / (1 + Math.exp(-a))) * up[i]);
      const down = linear(p("mlp.down_proj.weight"), act, dim);
      return h1.map((hi, i) => hi + down[i]);
    });
  }
  const head = c.tied ? embed : w("lm_head.weight");
  return xs.map((x) => linear(head, rmsNorm(x, w("model.norm.weight"), c.normEps), vocab));
}

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** Greedy continuation of `prompt` by `count` tokens, recomputing the whole prefix each step. */
export function referenceGreedy(
  c: LlamaConfig,
  w: ReferenceWeights,
  prompt: readonly number[],
  count: number,
): number[] {
  const ids = [...prompt];
  for (let i = 0; i < count; i++) ids.push(argmax(referenceLogits(c, w, ids).at(-1)!));
  return ids.slice(prompt.length);
}
