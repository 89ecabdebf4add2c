/**
 * Sampling on the GPU for the layer-by-layer decoding path: token `index` is drawn from logits
 * [1, vocab] by the fused path's sampler (decode_pick.wgsl, the same Philox uniforms), written to
 * a GPU list of ids and handed back as the next step's input [1, 1], so that no step waits for a
 * readback. gpuSamplerBlocker says when it cannot.
 */
import type { Tensor } from "../tensor/tensor.ts";
import {
  DECODE_PARAMS,
  type DecodeParams,
  gpuSamplerBlocker,
  type GpuSampling,
  SAMPLE_KERNEL,
} from "./decode.ts";
import { DecodedIds } from "./decoded_ids.ts";
import type { Llama } from "./llama.ts";

/** The decode kernels' parameters the sampler does not read (logits at offset 0 of `work`). */
const UNUSED_PARAMS = Object.fromEntries(
  Object.keys(DECODE_PARAMS).map((k) => [k, 0]),
) as DecodeParams;

export class GpuSampler {
  private readonly ids: DecodedIds;
  /** Where the sampler embeds the drawn token (the fused path's next input); unused here. */
  private readonly embedded: Tensor;

  constructor(readonly model: Llama, capacity: number, readonly sampling: GpuSampling) {
    const blocker = gpuSamplerBlocker(model, sampling);
    if (blocker) throw new Error(`GPU sampling: ${blocker}`);
    const e = model.engine;
    this.ids = new DecodedIds(e, capacity, "GPU sampling");
    this.embedded = e.empty([model.config.dim], "f32", "sampled token's embedding");
    e.keep(this.embedded);
  }

  /** Draws token `index` from logits [1, vocab]; returns it as ids i32 [1, 1] on the GPU. */
  sample(logits: Tensor, index: number): Tensor {
    const { vocab, dim } = this.model.config;
    if (logits.size !== vocab) {
      throw new RangeError(`GPU sampling: logits of ${logits.size} values, vocabulary ${vocab}`);
    }
    this.ids.check(index, 1);
    const e = this.model.engine;
    const s = this.sampling;
    const params: DecodeParams = {
      ...UNUSED_PARAMS,
      dim,
      vocab,
      index,
      temperature: s.temperature,
      top_k: s.topK,
      seed: s.seed >>> 0,
    };
    SAMPLE_KERNEL.dispatch(e.gpu, {
      entry: "sample",
      label: "sample token",
      params,
      buffers: {
        x: this.embedded.storage,
        work: logits.storage,
        embed: this.model.embed.storage,
        ids: this.ids.tensor.storage,
      },
      workgroups: [1],
    });
    const token = e.empty([1, 1], "i32", "sampled token");
    e.gpu.copy(this.ids.tensor.storage, index * 4, token.storage, 0, 4);
    return token;
  }

  /** Ids [from, from + count) drawn so far; submits the recorded work. */
  readIds(from: number, count: number): Promise<number[]> {
    return this.ids.read(from, count);
  }

  dispose(): void {
    this.ids.dispose();
    this.embedded.dispose();
  }
}
