/**
 * The Hugging Face Llama layout: config.json (LlamaForCausalLM) and model.safetensors, or shards
 * listed by model.safetensors.index.json; tensors named model.layers.N.self_attn.q_proj.weight, ….
 *
 * Hugging Face rotates the two halves of each head where this project's model (like llama2.c and
 * Meta's checkpoints) rotates adjacent pairs. The two are the same model with the rows of q_proj
 * and k_proj permuted within each head: feature c·(d/2) + i of a Hugging Face head is feature
 * 2i + c here. Loading and exporting apply that permutation, so a round trip gives back the same
 * tensors and identical logits.
 */
import { assignWeights, Llama, type LlamaConfig, type StoredWeight } from "../models/llama.ts";
import type { Engine } from "../tensor/engine.ts";
import {
  atomicWriteText,
  type NamedArray,
  readSafetensors,
  writeSafetensors,
} from "./safetensors.ts";

/** The config.json fields this loader reads (the rest are kept on export from none). */
interface HfConfig {
  architectures?: string[];
  model_type?: string;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  vocab_size: number;
  max_position_embeddings: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  tie_word_embeddings?: boolean;
  head_dim?: number;
  rope_scaling?: unknown;
  hidden_act?: string;
  attention_bias?: boolean;
  mlp_bias?: boolean;
}

/** The model described by a Hugging Face Llama config.json (`path` names it in errors). */
export function llamaConfigFromHf(hf: HfConfig, path: string): LlamaConfig {
  const fail = (why: string) => new Error(`${path}: ${why}`);
  if (hf.model_type && hf.model_type !== "llama") {
    throw fail(`model_type "${hf.model_type}" is not llama`);
  }
  if (hf.rope_scaling) {
    throw fail(`rope_scaling ${JSON.stringify(hf.rope_scaling)} is not supported`);
  }
  if (hf.hidden_act && hf.hidden_act !== "silu") {
    throw fail(`hidden_act "${hf.hidden_act}" is not silu`);
  }
  if (hf.attention_bias || hf.mlp_bias) throw fail("biased projections are not supported");
  const heads = hf.num_attention_heads;
  if (hf.head_dim !== undefined && hf.head_dim * heads !== hf.hidden_size) {
    throw fail(`head_dim ${hf.head_dim} × ${heads} heads is not hidden_size ${hf.hidden_size}`);
  }
  for (
    const k of ["hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"] as const
  ) {
    if (!Number.isInteger(hf[k])) throw fail(`${k} is missing or not a whole number`);
  }
  return {
    vocab: hf.vocab_size,
    dim: hf.hidden_size,
    hidden: hf.intermediate_size,
    layers: hf.num_hidden_layers,
    heads,
    kvHeads: hf.num_key_value_heads ?? heads,
    maxLen: hf.max_position_embeddings,
    normEps: hf.rms_norm_eps ?? 1e-6,
    ropeTheta: hf.rope_theta ?? 10000,
    // transformers' LlamaConfig default.
    tied: hf.tie_word_embeddings ?? false,
  };
}

export function hfConfigOf(c: LlamaConfig): HfConfig & Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    intermediate_size: c.hidden,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.dim / c.heads,
    vocab_size: c.vocab,
    max_position_embeddings: c.maxLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tied,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: "float32",
  };
}

/** Whether q and k rows of `name` are rotary features that the two layouts order differently. */
function rotaryHeads(name: string, c: LlamaConfig): number {
  if (name.endsWith("self_attn.q_proj.weight")) return c.heads;
  if (name.endsWith("self_attn.k_proj.weight")) return c.kvHeads;
  return 0;
}

/**
 * Rows of w [heads · d, cols] from one rotary layout to the other: toAdjacent takes Hugging
 * Face's half-split rows to adjacent pairs, otherwise the reverse.
 */
export function permuteRotaryRows(
  w: Float32Array,
  heads: number,
  cols: number,
  toAdjacent: boolean,
): Float32Array {
  const d = w.length / cols / heads;
  const half = d / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let c = 0; c < 2; c++) {
        const adjacent = h * d + 2 * i + c;
        const split = h * d + c * half + i;
        const [to, from] = toAdjacent ? [adjacent, split] : [split, adjacent];
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** config.json of `dir` (or the file itself), the model it describes and where its tensors are. */
async function readLayout(path: string): Promise<{ dir: string; config: LlamaConfig }> {
  const isConfig = path.endsWith(".json");
  const dir = isConfig ? path.replace(/\/?[^/]*$/, "") || "." : path;
  const configPath = isConfig ? path : `${dir}/config.json`;
  let hf: HfConfig;
  try {
    hf = JSON.parse(await Deno.readTextFile(configPath));
  } catch (e) {
    throw new Error(`${configPath}: cannot read a Hugging Face config (${(e as Error).message})`);
  }
  return { dir, config: llamaConfigFromHf(hf, configPath) };
}

/**
 * Every tensor of a Hugging Face checkpoint folder by name, with the file it came from, and the
 * file a missing tensor is reported against (the index for shards).
 */
async function readTensors(
  dir: string,
): Promise<{ tensors: Map<string, StoredWeight>; source: string }> {
  const index = `${dir}/model.safetensors.index.json`;
  let files: string[];
  let source: string;
  try {
    const map = JSON.parse(await Deno.readTextFile(index)).weight_map as Record<string, string>;
    files = [...new Set(Object.values(map))].map((f) => `${dir}/${f}`);
    source = index;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw new Error(`${index}: ${(e as Error).message}`);
    files = [`${dir}/model.safetensors`];
    source = files[0];
  }
  const tensors = new Map<string, StoredWeight>();
  for (const file of files) {
    const st = await readSafetensors(file);
    for (const [name, t] of Object.entries(st.tensors)) {
      if (t.dtype !== "F32") continue;
      tensors.set(name, { shape: t.shape, data: t.data as Float32Array, file });
    }
  }
  return { tensors, source };
}

/**
 * A model from a Hugging Face Llama folder (or its config.json): q and k rows are permuted to
 * adjacent rotary pairs; a missing tensor or a wrong shape is an error naming the tensor, the
 * file and both shapes.
 */
export async function loadHfLlama(engine: Engine, path: string): Promise<Llama> {
  const { dir, config } = await readLayout(path);
  const { tensors, source } = await readTensors(dir);
  const model = new Llama(engine, config);
  try {
    assignWeights(model, (name) => {
      const w = tensors.get(name);
      const heads = rotaryHeads(name, config);
      if (!w || !heads || w.shape.length !== 2 || w.shape[0] % heads !== 0) return w;
      return { ...w, data: permuteRotaryRows(w.data, heads, w.shape[1], true) };
    }, source);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

export interface ExportOptions {
  /** Split the tensors into shards of at most this many bytes (with an index); 0: one file. */
  shardBytes?: number;
}

/**
 * Writes `model` in the Hugging Face layout to `dir`: config.json and model.safetensors (or
 * shards and model.safetensors.index.json), q and k rows permuted to half-split rotary pairs,
 * lm_head.weight only when the head is not tied.
 */
export async function exportHfLlama(
  model: Llama,
  dir: string,
  opts: ExportOptions = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors: [string, NamedArray][] = [];
  for (const [name, t] of model.namedParameters()) {
    let data = await t.readF32();
    const heads = rotaryHeads(name, model.config);
    if (heads) data = permuteRotaryRows(data, heads, t.shape[1], false);
    tensors.push([name, { dtype: "F32", shape: [...t.shape], data }]);
  }
  const limit = opts.shardBytes ?? 0;
  const shards: [string, NamedArray][][] = [[]];
  let bytes = 0;
  for (const entry of tensors) {
    const size = entry[1].data.byteLength;
    if (limit > 0 && bytes > 0 && bytes + size > limit) {
      shards.push([]);
      bytes = 0;
    }
    shards.at(-1)!.push(entry);
    bytes += size;
  }
  const metadata = { format: "pt" };
  if (shards.length === 1) {
    await writeSafetensors(`${dir}/model.safetensors`, Object.fromEntries(shards[0]), metadata);
  } else {
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < shards.length; i++) {
      const file = `model-${String(i + 1).padStart(5, "0")}-of-${
        String(shards.length).padStart(5, "0")
      }.safetensors`;
      await writeSafetensors(`${dir}/${file}`, Object.fromEntries(shards[i]), metadata);
      for (const [name] of shards[i]) weightMap[name] = file;
    }
    const total = tensors.reduce((n, [, t]) => n + t.data.byteLength, 0);
    await atomicWriteText(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n",
    );
  }
  await atomicWriteText(
    `${dir}/config.json`,
    JSON.stringify(hfConfigOf(model.config), null, 2) + "\n",
  );
}
