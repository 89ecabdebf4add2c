/**
 * The backbones `deno task prune` scores, each on its own metric:
 * - a language-model run (lm:train): nats per token and perplexity on its validation split;
 *   calibration: the start of its training split;
 * - a model file (a llama2.c .bin such as stories260K, or a Hugging Face folder): negative
 *   log-likelihood per token of fixed sequences sampled from the dense model (seeded), and the
 *   KL divergence KL(dense ‖ pruned) of the next-token distributions on them; calibration: other
 *   sequences sampled the same way;
 * - a recommender run (train): validation and test NDCG@10 and HR@10 over the whole catalogue;
 *   calibration: the training sequences of the first users.
 */
import { tokenObjectiveOf } from "../src/loss/token_objectives.ts";
import { generate } from "../src/models/generate.ts";
import type { Llama } from "../src/models/llama.ts";
import type { Module } from "../src/nn/module.ts";
import type { LayerRole } from "../src/prune/activation.ts";
import type { Engine } from "../src/tensor/engine.ts";
import { reshape } from "../src/tensor/ops/shape.ts";
import { evaluateText, loadLmRun, loadModelPath, prepareText } from "../src/train/lm.ts";
import { runKindOf } from "../src/train/run_kind.ts";
import { openSasrecRun, readRunConfig } from "../src/train/sasrec_run.ts";

export interface Backbone {
  kind: "lm" | "model" | "sasrec";
  /** What was pruned: the run id or the model file. */
  model: string;
  /** The store's run, when the model is one. */
  runId: string | null;
  /** Where the JSON and CSV go by default. */
  dir: string;
  /** The runs folder whose store records the evaluation: the run's own, or --out. */
  storeDir: string;
  label: string;
  pruned: Module;
  /** Metric names in table order; the first is the heatmap's. */
  metrics: string[];
  higherIsBetter: boolean;
  layers: LayerRole[];
  score(): Promise<Record<string, number>>;
  /** Forward passes over calibration data (their results unused). */
  calibrate(): Promise<void>;
  dispose(): void;
}

export interface BackboneOptions {
  out: string;
  checkpoint: "best" | "last";
  /** LM: validation tokens per evaluation (0: all). */
  evalTokens: number;
  /** LM: training tokens of calibration; SASRec: calibration users = calibTokens / maxLen. */
  calibTokens: number;
  /** Model files: sequences, their length and the sampling seed. */
  sequences: number;
  sequenceLength: number;
  seed: number;
  /** SASRec: users evaluated on validation and test (0: all). */
  evalUsers: number;
}

/** Opens what `--model` names: a run id under `out`, a run folder, or a model file. */
export async function openBackbone(
  e: Engine,
  model: string,
  o: BackboneOptions,
): Promise<Backbone> {
  const path = model.replace(/\/+$/, "");
  const [out, id] = path.includes("/")
    ? [path.slice(0, path.lastIndexOf("/")), path.slice(path.lastIndexOf("/") + 1)]
    : [o.out, path];
  const saved = path.endsWith(".bin") ? null : await readRunConfig(`${out}/${id}`);
  if (!saved) return await modelFile(e, path, o);
  const kind = runKindOf(saved);
  if (kind === "lm") return await lmRun(e, out, id, o);
  if (kind === "sasrec") return await sasrecRun(e, out, id, saved, o);
  throw new Error(
    `--model ${model} is a run of task ${kind}; prune takes a language-model or SASRec run`,
  );
}

async function lmRun(e: Engine, out: string, id: string, o: BackboneOptions): Promise<Backbone> {
  const { model, run } = await loadLmRun(e, out, id, o.checkpoint);
  const data = await prepareText(run);
  const objective = tokenObjectiveOf(run.loss);
  const { train, valid, validChars } = data.split;
  const window = { seqLen: run.seqLen, batchSize: run.batchSize };
  return {
    kind: "lm",
    model: id,
    runId: id,
    dir: `${out}/${id}`,
    storeDir: out,
    label: `run ${id} (${o.checkpoint}), validation of ${data.label}`,
    pruned: model,
    metrics: ["loss", "ppl"],
    higherIsBetter: false,
    layers: ["q", "k", "v", "o", "gate", "up", "down"],
    score: async () => {
      const m = await evaluateText(model, objective, valid, {
        ...window,
        limit: o.evalTokens,
        charsPerToken: validChars / valid.length,
      });
      return { loss: m.loss, ppl: m.ppl };
    },
    calibrate: async () =>
      void (await evaluateText(model, objective, train, {
        ...window,
        limit: o.calibTokens,
        charsPerToken: 1,
      })),
    dispose: () => model.dispose(),
  };
}

/** `count` sequences of `length` tokens sampled from the model after BOS (id 1), seeds from seed. */
async function sampleSequences(
  model: Llama,
  count: number,
  length: number,
  seed: number,
): Promise<Int32Array> {
  const ids = new Int32Array(count * length);
  for (let s = 0; s < count; s++) {
    const g = await generate(model, [1], {
      maxTokens: length - 1,
      seed: seed + s,
      temperature: 1,
      topK: 0,
    });
    // A sequence that stopped early (the context) is padded by repeating its last token.
    const seq = [1, ...g.ids];
    for (let t = 0; t < length; t++) ids[s * length + t] = seq[Math.min(t, seq.length - 1)];
  }
  return ids;
}

/** log-softmax of the logits [N, V] of a batch of sequences, in float64 on the host. */
async function logProbs(model: Llama, ids: Int32Array, count: number): Promise<Float64Array> {
  const e = model.engine;
  const length = ids.length / count;
  const logits = e.noGrad(() =>
    e.tidy(() => {
      const h = model.forward(e.tensor(ids, [count, length], "i32"));
      return model.logits(reshape(h, [count * length, model.config.dim]));
    })
  );
  const v = await logits.readF32();
  logits.dispose();
  const V = model.config.vocab;
  const out = new Float64Array(v.length);
  for (let r = 0; r < v.length / V; r++) {
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, v[r * V + j]);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(v[r * V + j] - max);
    const lse = max + Math.log(sum);
    for (let j = 0; j < V; j++) out[r * V + j] = v[r * V + j] - lse;
  }
  return out;
}

/**
 * NLL per token of the sequences' next tokens under `lp`, and the mean over positions of
 * KL(dense ‖ lp) (every position but each sequence's last, which predicts nothing scored).
 */
export function nllAndKl(
  ids: Int32Array,
  count: number,
  vocab: number,
  dense: Float64Array,
  lp: Float64Array,
): { nll: number; kl: number } {
  const length = ids.length / count;
  let nll = 0;
  let kl = 0;
  let n = 0;
  for (let s = 0; s < count; s++) {
    for (let t = 0; t < length - 1; t++) {
      const r = (s * length + t) * vocab;
      nll -= lp[r + ids[s * length + t + 1]];
      for (let j = 0; j < vocab; j++) kl += Math.exp(dense[r + j]) * (dense[r + j] - lp[r + j]);
      n++;
    }
  }
  return { nll: nll / n, kl: kl / n };
}

async function modelFile(e: Engine, path: string, o: BackboneOptions): Promise<Backbone> {
  const model = await loadModelPath(e, path);
  const { sequences: count, sequenceLength: length, seed } = o;
  if (length < 2 || length > model.config.maxLen) {
    throw new RangeError(
      `--sequence-length ${length}: needs 2 to the model's context of ${model.config.maxLen}`,
    );
  }
  const ids = await sampleSequences(model, count, length, seed);
  const calibration = await sampleSequences(model, count, length, seed + count);
  const dense = await logProbs(model, ids, count);
  const name = path.split("/").at(-1)!;
  return {
    kind: "model",
    model: path,
    runId: null,
    dir: path.slice(0, path.lastIndexOf("/") + 1) || ".",
    storeDir: o.out,
    label: `${name}: ${count} sequences of ${length} tokens sampled from the dense model ` +
      `(seed ${seed})`,
    pruned: model,
    metrics: ["kl", "nll"],
    higherIsBetter: false,
    layers: ["q", "k", "v", "o", "gate", "up", "down"],
    score: async () =>
      nllAndKl(ids, count, model.config.vocab, dense, await logProbs(model, ids, count)),
    calibrate: async () => void (await logProbs(model, calibration, count)),
    dispose: () => model.dispose(),
  };
}

async function sasrecRun(
  e: Engine,
  out: string,
  id: string,
  saved: Record<string, unknown>,
  o: BackboneOptions,
): Promise<Backbone> {
  const run = await openSasrecRun(e, out, id, saved, o);
  return {
    kind: "sasrec",
    model: id,
    runId: id,
    dir: `${out}/${id}`,
    storeDir: out,
    label: run.label,
    pruned: run.model,
    metrics: ["test_ndcg@10", "test_hr@10", "valid_ndcg@10", "valid_hr@10"],
    higherIsBetter: true,
    layers: ["q", "k", "v", "o", "fc1", "fc2"],
    score: run.score,
    calibrate: run.calibrate,
    dispose: () => run.model.dispose(),
  };
}
