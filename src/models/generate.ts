/** Text generation with a kv cache: one prefill of the prompt, then one cached step per token. */
import { seededRandom } from "../tensor/random.ts";
import type { Llama } from "./llama.ts";
import { sampleToken, type SamplingOptions } from "./sampling.ts";

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  /** Called with each new token as it is chosen (streaming output). */
  onToken?: (id: number) => void;
  /** Stop after this token (e.g. EOS), which is kept. */
  stopAt?: number;
}

export interface Generation {
  ids: number[];
  /** Seconds of the prompt's forward and of the decoding steps after it. */
  prefillSeconds: number;
  decodeSeconds: number;
  /** Why it stopped: the token budget, the stop token, or the model's context length. */
  stop: "max_tokens" | "stop_token" | "context";
}

export async function generate(
  model: Llama,
  prompt: readonly number[],
  opts: GenerateOptions,
): Promise<Generation> {
  if (!prompt.length) throw new RangeError("generate: the prompt has no tokens");
  const { maxLen, vocab } = model.config;
  for (const id of prompt) {
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) {
      throw new RangeError(`generate: prompt token ${id} is outside the vocabulary [0, ${vocab})`);
    }
  }
  if (prompt.length >= maxLen) {
    throw new RangeError(
      `generate: a prompt of ${prompt.length} tokens leaves no room in the context of ${maxLen}`,
    );
  }
  const e = model.engine;
  const random = seededRandom(opts.seed);
  const cache = model.newCache(1, Math.min(maxLen, prompt.length + opts.maxTokens));
  const ids: number[] = [];
  let stop: Generation["stop"] = "max_tokens";
  const t0 = performance.now();
  let t1 = t0;
  try {
    let logits = model.prefill(e.tensor(Int32Array.from(prompt), [1, prompt.length], "i32"), cache);
    while (ids.length < opts.maxTokens) {
      const next = sampleToken(await logits.readF32(), opts, random);
      logits.dispose();
      if (!ids.length) t1 = performance.now();
      ids.push(next);
      opts.onToken?.(next);
      if (next === opts.stopAt) {
        stop = "stop_token";
        break;
      }
      if (ids.length === opts.maxTokens) break;
      if (cache.length === cache.maxLen) {
        stop = "context";
        break;
      }
      logits = model.step(e.tensor([next], [1, 1], "i32"), cache);
    }
  } finally {
    cache.dispose();
  }
  const t2 = performance.now();
  return { ids, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000, stop };
}
