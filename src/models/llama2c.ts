/**
 * llama2.c checkpoints ("version 0", karpathy/llama2.c's run.c layout): a header of 7 int32
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
 * means an untied classifier at the end), then float32 tensors: token_embedding, rms_att, wq, wk,
 * wv, wo, rms_ffn, w1, w2, w3 (all layers of one kind together), rms_final, the legacy rotary
 * tables (skipped) and, untied, wcls. Rotary pairs are adjacent, as in this project's model.
 */
import type { Engine } from "../tensor/engine.ts";
import { assignWeights, Llama, type LlamaConfig, type StoredWeight } from "./llama.ts";

const HEADER_BYTES = 28;
/** The magic of llama2.c's later export versions ("ak42"), which this reader does not take. */
const VERSIONED_MAGIC = 0x616b3432;

export interface Llama2cCheckpoint {
  config: LlamaConfig;
  /** By Hugging Face name, in this project's shapes. */
  weights: Map<string, StoredWeight>;
}

/** Reads a llama2.c checkpoint's bytes; `path` names it in errors. */
export function parseLlama2c(bytes: Uint8Array, path: string): Llama2cCheckpoint {
  if (bytes.length < HEADER_BYTES) {
    throw new Error(`${path}: ${bytes.length} bytes is shorter than a llama2.c header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) === VERSIONED_MAGIC) {
    throw new Error(
      `${path}: a versioned llama2.c export (magic "ak42"); export it with --version 0 ` +
        "(legacy), or use the Hugging Face layout",
    );
  }
  const [dim, hidden, layers, heads, kvHeads, signedVocab, seqLen] = Array.from(
    { length: 7 },
    (_, i) => view.getInt32(4 * i, true),
  );
  const vocab = Math.abs(signedVocab);
  const tied = signedVocab > 0;
  const config: LlamaConfig = {
    vocab,
    dim,
    hidden,
    layers,
    heads,
    kvHeads,
    maxLen: seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    tied,
  };
  for (const [k, v] of Object.entries({ dim, hidden, layers, heads, kvHeads, vocab, seqLen })) {
    if (!(v > 0) || dim % heads !== 0 || heads % kvHeads !== 0) {
      throw new Error(`${path}: not a llama2.c checkpoint (header ${k} = ${v})`);
    }
  }
  const headDim = dim / heads;
  const kvDim = headDim * kvHeads;
  const per = (name: string, shape: number[]) => ({ name, shape });
  // Each kind's tensors for all layers lie together, in this order.
  const kinds = [
    per("input_layernorm.weight", [dim]),
    per("self_attn.q_proj.weight", [dim, dim]),
    per("self_attn.k_proj.weight", [kvDim, dim]),
    per("self_attn.v_proj.weight", [kvDim, dim]),
    per("self_attn.o_proj.weight", [dim, dim]),
    per("post_attention_layernorm.weight", [dim]),
    per("mlp.gate_proj.weight", [hidden, dim]),
    per("mlp.down_proj.weight", [dim, hidden]),
    per("mlp.up_proj.weight", [hidden, dim]),
  ];
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const floats = vocab * dim + layers * kinds.reduce((n, k) => n + size(k.shape), 0) + dim +
    seqLen * headDim + (tied ? 0 : vocab * dim);
  const want = HEADER_BYTES + floats * 4;
  if (bytes.length !== want) {
    throw new Error(
      `${path}: ${bytes.length} bytes, but a llama2.c checkpoint with this header ` +
        `(${JSON.stringify(config)}) has ${want}`,
    );
  }
  // A copy: the file's bytes after the header need not be 4-byte aligned in memory.
  const data = new Float32Array(bytes.slice(HEADER_BYTES).buffer);
  const weights = new Map<string, StoredWeight>();
  let at = 0;
  const take = (name: string, shape: number[]) => {
    const n = size(shape);
    weights.set(name, { shape, data: data.subarray(at, at + n), file: path });
    at += n;
  };
  take("model.embed_tokens.weight", [vocab, dim]);
  for (const kind of kinds) {
    for (let l = 0; l < layers; l++) take(`model.layers.${l}.${kind.name}`, kind.shape);
  }
  take("model.norm.weight", [dim]);
  at += seqLen * headDim;
  if (!tied) take("lm_head.weight", [vocab, dim]);
  return { config, weights };
}

/** A model built and filled from a llama2.c checkpoint file. */
export async function loadLlama2c(engine: Engine, path: string): Promise<Llama> {
  const { config, weights } = parseLlama2c(await Deno.readFile(path), path);
  const model = new Llama(engine, config);
  try {
    assignWeights(model, (name) => weights.get(name), path);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
