/**
 * Training a Llama-style decoder on plain text: text → char/byte tokens → 90/10 split → random
 * windows → the decoder → a registered token objective → Adam, run by the generic loop (loop.ts)
 * inside a run session (session.ts); validation reports nats per token, perplexity and bits per
 * character.
 */
import { redactUrl } from "../store/postgres.ts";
import {
  RandomWindows,
  splitText,
  type TextSplit,
  textTokenizer,
  tilingWindows,
  type TokenBatch,
  type Tokenizer,
  tokenizerFromSpec,
} from "../data/text.ts";
import { Llama, type LlamaConfig } from "../models/llama.ts";
import { loadLlama2c } from "../models/llama2c.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import { loadHfLlama } from "./hf.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { type TokenObjective, tokenObjectiveOf } from "../loss/token_objectives.ts";
import type { LmConfig } from "./lm_config.ts";
import { Adam } from "./optim.ts";
import type { MetricGroup } from "./events.ts";
import type { Logger } from "./log.ts";
import {
  type Evaluator,
  optimiserStep,
  runInSession,
  runLoop,
  type RunSummary,
  START,
  summaryOf,
} from "./loop.ts";
import { RunSession } from "./session.ts";
import { attentionBlocker } from "../tensor/ops/attention.ts";
import { ConfigError } from "./flags.ts";

export interface LmData {
  /** The file's name, the run's dataset label. */
  label: string;
  tokenizer: Tokenizer;
  split: TextSplit;
}

/** Reads the text, builds its tokenizer and splits it 90/10. */
export async function prepareText(c: LmConfig): Promise<LmData> {
  if (!c.data) throw new Error("lm: no --data file");
  const text = await Deno.readTextFile(c.data);
  const tokenizer = textTokenizer(c.tokenizer, text);
  const split = splitText(text, tokenizer);
  if (split.valid.length < 2) throw new Error(`${c.data}: too short for a validation split`);
  return { label: c.data.split("/").at(-1) ?? c.data, tokenizer, split };
}

export function llamaConfigOf(c: LmConfig, vocab: number): LlamaConfig {
  return {
    vocab,
    dim: c.dim,
    hidden: c.hidden,
    layers: c.layers,
    heads: c.heads,
    kvHeads: c.kvHeads,
    maxLen: c.seqLen,
    normEps: 1e-5,
    ropeTheta: c.ropeTheta,
    tied: !c.untied,
  };
}

/**
 * Peak GPU bytes of a training step, estimated: every parameter four times (weights, gradient,
 * Adam's two moments), the activations the tape keeps per token and layer (inputs and outputs of
 * each op: norms, q, k, v before and after rotation, attention output and its log-sum-exp, the
 * projections, gate, up and their product, the residual sums) plus one layer's worth of
 * gradients in flight, and the objective's own memory.
 */
export function estimateLmTrainingBytes(c: LmConfig, vocab: number): number {
  const m = llamaConfigOf(c, vocab);
  const kvDim = (m.dim / m.heads) * m.kvHeads;
  const perLayer = 9 * m.dim + 3 * kvDim + 3 * m.hidden + m.heads + 1;
  const params = vocab * m.dim * (m.tied ? 1 : 2) + m.dim +
    m.layers * (2 * m.dim + 2 * m.dim * m.dim + 2 * kvDim * m.dim + 3 * m.hidden * m.dim);
  const tokens = c.batchSize * c.seqLen;
  const activations = tokens * ((m.layers + 1) * perLayer + 2 * m.dim);
  return 4 * (4 * params + activations) +
    tokenObjectiveOf(c.loss).memoryBytes(tokens, vocab);
}

/** The mean loss of a batch of windows under `objective`, on the tape when one is recording. */
export function windowLoss(model: Llama, objective: TokenObjective, batch: TokenBatch): Tensor {
  const e = model.engine;
  const ids = e.tensor(batch.inputs, [batch.batch, batch.seqLen], "i32", "tokens");
  const h = model.forward(ids);
  return objective.loss({
    h: reshape(h, [batch.batch * batch.seqLen, model.config.dim]),
    head: model.head,
    targets: batch.targets,
  });
}

/** The decoder, its optimiser and objective: what one training step needs. */
export class LmTraining {
  readonly model: Llama;
  readonly optimizer: Adam;
  readonly objective: TokenObjective;

  constructor(readonly engine: Engine, readonly config: LmConfig, vocab: number) {
    this.model = new Llama(engine, llamaConfigOf(config, vocab), config.seed);
    this.optimizer = new Adam(this.model.parameters(), {
      lr: config.lr,
      weightDecay: config.weightDecay,
      decoupled: true,
    });
    this.objective = tokenObjectiveOf(config.loss);
  }

  loss(batch: TokenBatch): Tensor {
    return windowLoss(this.model, this.objective, batch);
  }

  step(batch: TokenBatch): Promise<number> {
    return optimiserStep(
      this.engine,
      this.model,
      this.optimizer,
      this.config.clip,
      () => this.loss(batch),
    );
  }

  dispose(): void {
    this.model.dispose();
    this.optimizer.dispose();
  }
}

/**
 * Nats per token over the windows that tile `tokens` (the first `limit` when > 0), perplexity,
 * and bits per character (`charsPerToken` characters of text per token).
 */
export async function evaluateText(
  model: Llama,
  objective: TokenObjective,
  tokens: Int32Array,
  opts: { seqLen: number; batchSize: number; limit?: number; charsPerToken: number },
): Promise<MetricGroup> {
  const e = model.engine;
  let nats = 0;
  let count = 0;
  for (const batch of tilingWindows(tokens, opts.seqLen, opts.batchSize, opts.limit ?? 0)) {
    const loss = e.noGrad(() => e.tidy(() => windowLoss(model, objective, batch)));
    nats += (await loss.read())[0] * batch.targets.length;
    loss.dispose();
    count += batch.targets.length;
  }
  if (!count) throw new Error(`evaluation needs more than ${opts.seqLen} tokens`);
  const loss = nats / count;
  return { loss, ppl: Math.exp(loss), bpc: loss / Math.LN2 / opts.charsPerToken, tokens: count };
}

/** Validation loss: lower is better; each epoch scores --eval-tokens, the final pass all. */
class TextEvaluator implements Evaluator {
  readonly select = { key: "loss", higherIsBetter: false };
  readonly headline = ["loss", "bpc"];

  constructor(
    private readonly training: LmTraining,
    private readonly data: LmData,
    private readonly c: LmConfig,
  ) {}

  private score(limit: number): Promise<MetricGroup> {
    const { valid, validChars } = this.data.split;
    return evaluateText(this.training.model, this.training.objective, valid, {
      seqLen: this.c.seqLen,
      batchSize: this.c.batchSize,
      limit,
      charsPerToken: validChars / valid.length,
    });
  }

  validate(): Promise<MetricGroup> {
    return this.score(this.c.evalTokens);
  }

  async final(): Promise<{ valid: MetricGroup; groups: Record<string, MetricGroup> }> {
    const all = await this.score(0);
    return { valid: all, groups: { valid_all: all } };
  }
}

export interface LmTrainOptions {
  logger: Logger;
  signal?: AbortSignal;
  onMetrics?: () => void;
}

/** `valid` is over the whole validation split, best checkpoint (when finished). */
export interface LmTrainResult extends RunSummary {
  estimateBytes: number;
}

/** What config.json holds beside the checkpoints: enough to rebuild model and tokenizer. */
export interface LmRunFile extends LmConfig {
  task: "lm";
  model: LlamaConfig;
  tokenizerSpec: ReturnType<Tokenizer["spec"]>;
  trainTokens: number;
  validTokens: number;
}

export async function trainLm(
  engine: Engine,
  c: LmConfig,
  data: LmData,
  opts: LmTrainOptions,
): Promise<LmTrainResult> {
  const { logger } = opts;
  const vocab = data.tokenizer.vocabSize;
  const attention = attentionBlocker(engine, {
    T: c.seqLen,
    group: c.heads / c.kvHeads,
    headDim: c.dim / c.heads,
    dropout: false,
    masked: false,
  });
  if (attention) throw new ConfigError(`--seq-len ${c.seqLen}: ${attention}; lower --seq-len`);
  // The store's URL is recorded without its password.
  const recorded = { ...c, store: c.store === null ? null : redactUrl(c.store) };
  const runFile: LmRunFile = {
    ...recorded,
    task: "lm",
    model: llamaConfigOf(c, vocab),
    tokenizerSpec: data.tokenizer.spec(),
    trainTokens: data.split.train.length,
    validTokens: data.split.valid.length,
  };
  const session = await RunSession.open({
    out: c.out,
    store: c.store,
    resume: c.resume,
    name: c.name ?? `${data.label}-llama`,
    dataset: data.label,
    config: { ...recorded, task: "lm" },
    configFile: runFile as unknown as Record<string, unknown>,
    logger,
    onMetrics: opts.onMetrics,
  });
  const training = new LmTraining(engine, c, vocab);
  const run = await runInSession(
    engine,
    session,
    () => training.dispose(),
    async () => {
      const position = session.resumed
        ? await session.restore(training.model, training.optimizer)
        : START;
      const params = training.model.parameters().reduce((n, t) => n + t.size, 0);
      logger.emit({
        event: "run",
        run: session.runId,
        dataset: data.label,
        objective: `${c.loss} (${tokenObjectiveOf(c.loss).help})`,
        estimate_bytes: estimateLmTrainingBytes(c, vocab),
        adapter: engine.gpu.adapterName,
        resumed: session.resumed,
        vocab,
        parameters: params,
        train_tokens: data.split.train.length,
        valid_tokens: data.split.valid.length,
      });
      const batches = new RandomWindows(data.split.train, {
        batchSize: c.batchSize,
        seqLen: c.seqLen,
        stepsPerEpoch: c.stepsPerEpoch,
        seed: c.seed,
      });
      // Every step trains on batchSize × seqLen windows: the same shapes each time.
      return await engine.gpu.allocator.withSteadyShapes(() =>
        runLoop(
          engine,
          {
            model: training.model,
            optimizer: training.optimizer,
            batches,
            loss: (batch) => training.loss(batch),
            evaluator: new TextEvaluator(training, data, c),
            tokensOf: (batch) => batch.targets.length,
          },
          { epochs: c.epochs, evalEvery: c.evalEvery, patience: c.patience, clip: c.clip },
          session,
          position,
          opts,
        )
      );
    },
  );
  return {
    ...summaryOf(session, run),
    estimateBytes: estimateLmTrainingBytes(c, vocab),
  };
}

/** A trained run's model (its best or last checkpoint), tokenizer and recorded configuration. */
export async function loadLmRun(
  engine: Engine,
  out: string,
  runId: string,
  checkpoint: "best" | "last" = "best",
): Promise<{ model: Llama; tokenizer: Tokenizer; run: LmRunFile }> {
  const dir = `${out}/${runId}`;
  let run: LmRunFile;
  try {
    run = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  } catch (e) {
    throw new Error(`run ${runId}: cannot read ${dir}/config.json (${(e as Error).message})`);
  }
  if (run.task !== "lm") throw new Error(`run ${runId} (${dir}) is not a language-model run`);
  const model = new Llama(engine, run.model, run.seed);
  try {
    await loadCheckpoint(`${dir}/${checkpoint}.safetensors`, model, null);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, tokenizer: tokenizerFromSpec(run.tokenizerSpec), run };
}

/** A model file: a llama2.c checkpoint (.bin) or a Hugging Face folder or config.json. */
export function loadModelPath(engine: Engine, path: string): Promise<Llama> {
  return path.endsWith(".bin") ? loadLlama2c(engine, path) : loadHfLlama(engine, path);
}
