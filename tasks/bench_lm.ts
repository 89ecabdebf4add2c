/**
 * `deno task bench:lm`: training, prefill and batch-1 decoding tokens/s and peak GPU bytes of the
 * default lm:train model and of stories260K; `--peer` runs the PyTorch peer beside them.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { Llama } from "../src/models/llama.ts";
import { loadLlama2c, parseLlama2c } from "../src/models/llama2c.ts";
import { LM_DEFAULTS } from "../src/train/lm_config.ts";
import { llamaConfigOf, prepareText } from "../src/train/lm.ts";
import { seededRandom } from "../src/tensor/random.ts";
import {
  benchLm,
  formatLmReport,
  formatLmRounds,
  type LmBenchCase,
  type LmBenchFigures,
  type PeerLmFigures,
} from "../bench/lm.ts";
import { peerEnv, pythonWithTorch, ServingPeer } from "../bench/python.ts";
import { type BlockPartner, writeResult } from "../bench/util.ts";
import { positiveInt, runMain } from "./cli.ts";

const SHAKESPEARE = fileURLToPath(new URL("../data/tinyshakespeare.txt", import.meta.url));
const STORIES = fileURLToPath(new URL("../data/stories260K/stories260K.bin", import.meta.url));
const PEER = fileURLToPath(new URL("../bench/peer/torch_llama.py", import.meta.url));
/** Tokens decoded in all, over as many runs as the model's context needs (both sides). */
const DECODED = 256;

const HELP = `Usage: deno task bench:lm [flags]

Measures the default lm:train model (on ${SHAKESPEARE}) and stories260K (on random token ids):
training tokens/s (Adam steps after warm-up), prefill tokens/s (one forward of a prompt into a
kv cache), batch-1 greedy decoding tokens/s on the fused path (decoded and sampled on the GPU,
ids read back in bulk) and on the layer-by-layer path (one cached step and one readback per
token), and peak GPU bytes of training and of inference. Prints a table and writes
bench/results/lm-<adapter>.json.

Decoding is like for like with the peer: the same prompt ids (an eighth of the default model's
context, 64 tokens for stories260K), the same tokens per run (the prompt's prefill and first token
untimed), an untimed warm-up run, then runs until ${DECODED} tokens are decoded; the peer reports
the better of 1 and 2 threads.

Flags:
  --steps N          timed training steps per model [default: 30]
  --warmup N         untimed steps first (pipeline compiles) [default: 2]
  --decode N         tokens decoded per run at batch 1, at most what the context leaves after
                     the prompt [default: 128]
  --decode-only      skip training (prefill and decoding only)
  --only LIST        default, stories260K [default: both]
  --peer             also run the PyTorch peer (bench/peer/torch_llama.py) on the same
                     shapes and print the ratios [default: false]
  --rounds N         with --peer: the timed steps in N blocks, ours and the peer's in turns,
                     so that both sides see the same phases of the machine [default: 5]
  --help             print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      steps: { type: "string", default: "30" },
      warmup: { type: "string", default: "2" },
      decode: { type: "string", default: "128" },
      "decode-only": { type: "boolean", default: false },
      only: { type: "string", default: "default,stories260K" },
      peer: { type: "boolean", default: false },
      rounds: { type: "string", default: "5" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const decodeOnly = values["decode-only"];
  const steps = decodeOnly ? 0 : positiveInt("--steps", values.steps);
  const warmup = decodeOnly ? 0 : Number(values.warmup);
  const decode = positiveInt("--decode", values.decode);
  const rounds = positiveInt("--rounds", values.rounds);
  const only = values.only.split(",").map((s) => s.trim());
  const cases: (LmBenchCase & { peerArgs: string[] })[] = [];
  const engine = await Engine.create();
  if (only.includes("default")) {
    const c = { ...LM_DEFAULTS, data: SHAKESPEARE };
    const data = await prepareText(c);
    const config = llamaConfigOf(c, data.tokenizer.vocabSize);
    cases.push({
      label: "default",
      model: () => Promise.resolve(new Llama(engine, config, c.seed)),
      tokens: data.split.train,
      batchSize: c.batchSize,
      seqLen: c.seqLen,
      lr: c.lr,
      clip: c.clip,
      // The model's context is its training window: half of it prefilled; decoding from an
      // eighth of it, the rest decoded, so that a run's readbacks weigh on more tokens.
      promptTokens: c.seqLen / 2,
      decodePromptTokens: c.seqLen / 8,
      ...decoding(Math.min(decode, c.seqLen - c.seqLen / 8 - 1)),
      peerArgs: [
        "--data",
        SHAKESPEARE,
        ...["--dim", c.dim, "--hidden", c.hidden, "--layers", c.layers].map(String),
        ...["--heads", c.heads, "--kv-heads", c.kvHeads, "--seq-len", c.seqLen].map(String),
        ...["--batch-size", c.batchSize, "--lr", c.lr, "--clip", c.clip].map(String),
      ],
    });
  }
  if (only.includes("stories260K")) {
    const { config } = parseLlama2c(await Deno.readFile(STORIES), STORIES);
    const random = seededRandom(1);
    const tokens = Int32Array.from({ length: 1 << 18 }, () => Math.floor(random() * config.vocab));
    cases.push({
      label: "stories260K",
      model: () => loadLlama2c(engine, STORIES),
      tokens,
      batchSize: 16,
      seqLen: 256,
      lr: 1e-3,
      clip: 1,
      promptTokens: 64,
      decodePromptTokens: 64,
      ...decoding(Math.min(decode, config.maxLen - 64 - 1)),
      peerArgs: [
        ...["--vocab", config.vocab, "--dim", config.dim, "--hidden", config.hidden].map(String),
        ...["--layers", config.layers, "--heads", config.heads].map(String),
        ...["--kv-heads", config.kvHeads, "--seq-len", 256, "--batch-size", 16].map(String),
        ...["--lr", 1e-3, "--clip", 1].map(String),
      ],
    });
  }
  try {
    const rows: LmBenchFigures[] = [];
    const peers: PeerLmFigures[] = [];
    const python = values.peer ? await pythonWithTorch() : null;
    if (values.peer && !python) {
      console.log(
        "peer skipped: PyTorch is not installed " +
          "(apt-get install -y python3-torch python3-numpy libopenblas0-pthread)",
      );
    }
    for (const c of cases) {
      console.log(`${c.label}: ${warmup} + ${steps} training steps, prefill, decoding…`);
      if (!python) {
        rows.push(await benchLm(engine, c, steps, warmup));
        continue;
      }
      const peer = new PeerTrainer(python, c, steps, warmup);
      try {
        // Its start-up and warm-up, before any of ours: nothing timed overlaps them.
        await peer.ready();
        rows.push(await benchLm(engine, c, steps, warmup, { trainer: peer, blocks: rounds }));
        console.log(`peer ${c.label}: prefill, decoding…`);
        peers.push(await peer.finish());
      } finally {
        peer.kill();
      }
    }
    console.log(formatLmReport(rows, peers));
    for (const line of formatLmRounds(rows, peers)) console.log(line);
    const path = await writeResult("lm", engine.gpu.adapterName, {
      steps,
      warmup,
      rounds: python ? rounds : 1,
      rows,
      peer: peers,
    });
    console.log(`wrote ${path}`);
  } finally {
    engine.destroy();
  }
  return 0;
}

/** Tokens per run and the runs that decode DECODED tokens. */
function decoding(tokens: number): { decodeTokens: number; decodeRuns: number } {
  return { decodeTokens: tokens, decodeRuns: Math.ceil(DECODED / tokens) };
}

/**
 * The PyTorch peer in --serve mode: it warms up as it starts, trains a block of steps after each
 * of ours (benchLm's BlockPartner), then measures prefill and decoding once training is done.
 */
class PeerTrainer implements BlockPartner {
  private readonly process: ServingPeer;
  private readonly blockSeconds: number[] = [];

  constructor(
    python: string,
    private readonly c: LmBenchCase & { peerArgs: string[] },
    steps: number,
    warmup: number,
  ) {
    const ids = (n: number) => Array.from(c.tokens.subarray(0, n)).join(",");
    this.process = new ServingPeer(python, PEER, [
      ...c.peerArgs,
      ...(steps > 0 ? ["--warmup", String(warmup)] : ["--decode-only"]),
      ...["--prompt-ids", ids(c.promptTokens), "--decode-prompt-ids", ids(c.decodePromptTokens)],
      ...["--decode-tokens", String(c.decodeTokens), "--decode-runs", String(c.decodeRuns)],
    ], peerEnv());
  }

  /** Resolves once the peer has started and warmed up. */
  ready(): Promise<void> {
    return this.process.ready();
  }

  async train(steps: number): Promise<void> {
    const { seconds } = await this.process.ask(`train ${steps}`);
    if (typeof seconds !== "number") throw new Error(`peer ${this.c.label}: no seconds`);
    this.blockSeconds.push(seconds);
  }

  /** Ends training (the peer then measures prefill and decoding) and returns its figures. */
  async finish(): Promise<PeerLmFigures> {
    await this.ready();
    await this.process.send("done");
    const out = await this.process.next();
    await this.process.close();
    const figure = (key: string) => typeof out[key] === "number" ? out[key] as number : NaN;
    return {
      label: this.c.label,
      parameters: figure("parameters"),
      trainTokensPerSecond: figure("train_tokens_per_second"),
      trainBlockSeconds: this.blockSeconds,
      prefillTokensPerSecond: figure("prefill_tokens_per_second"),
      decodeTokensPerSecond: figure("decode_tokens_per_second"),
      decodeThreads: figure("decode_threads"),
      trainLoss: figure("train_loss"),
    };
  }

  kill(): void {
    this.process.kill();
  }
}

if (import.meta.main) await runMain(main);
