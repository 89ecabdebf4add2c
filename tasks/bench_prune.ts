/**
 * `deno task bench:prune`: inference throughput of a dense model against 8:16 activation pruning
 * of its linear layers, in the same run (bench/prune.ts): a wide language model's prefill and
 * batch-1 decoding tokens/s, and SASRec's full-catalogue ranking users/s.
 */
import { parseArgs } from "node:util";
import {
  decodeRate,
  denseAgainstSparse,
  prefillRate,
  rankingRate,
  type Throughput,
} from "../bench/prune.ts";
import { formatNumber, formatTable, writeResult } from "../bench/util.ts";
import { Llama, type LlamaConfig } from "../src/models/llama.ts";
import { SasRec, type SasRecConfig } from "../src/models/sasrec.ts";
import { type ActivationPruningConfig, parseSparsity } from "../src/prune/activation.ts";
import { assertCriterion } from "../src/prune/criteria.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { positiveInt, runMain } from "./cli.ts";

const HELP = `Usage: deno task bench:prune [flags]

Inference throughput, dense against activation-sparse (every linear layer's input pruned per
token, pruning included), measured alternately in the same run on random weights:
- a Llama-style LM wide enough that its linear layers dominate: prefill tokens/s and batch-1
  greedy decoding tokens/s;
- SASRec: users/s of full-catalogue ranking.
Prints a table with the sparse/dense ratios; writes bench/results/prune-<adapter>.json.

Flags:
  --pattern P        N:M pattern or uP [default: 8:16]
  --criterion C      magnitude, weight-aware, variance, clact, amber [default: magnitude]
  --dim N            LM width [default: 1024]
  --hidden N         LM feed-forward width [default: 2816]
  --layers N         LM layers [default: 2]
  --prompt N         prompt tokens (prefill) [default: 64]
  --decode N         tokens decoded at batch 1 per repetition [default: 16]
  --reps N           timed repetitions of each, alternated [default: 3]
  --items N          SASRec catalogue [default: 12101, Beauty's]
  --sasrec-dim N     SASRec width [default: 256]
  --users N          users ranked per repetition [default: 256]
  --only LIST        lm, sasrec [default: both]
  --json             print the result as one JSON line
  --help             print this help`;

function row(what: string, unit: string, t: Throughput) {
  return [what, unit, formatNumber(t.dense), formatNumber(t.sparse), `${t.ratio.toFixed(2)}×`];
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      pattern: { type: "string", default: "8:16" },
      criterion: { type: "string", default: "magnitude" },
      dim: { type: "string", default: "1024" },
      hidden: { type: "string", default: "2816" },
      layers: { type: "string", default: "2" },
      prompt: { type: "string", default: "64" },
      decode: { type: "string", default: "16" },
      reps: { type: "string", default: "3" },
      items: { type: "string", default: "12101" },
      "sasrec-dim": { type: "string", default: "256" },
      users: { type: "string", default: "256" },
      only: { type: "string", default: "lm,sasrec" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const int = (flag: string) =>
    positiveInt(`--${flag}`, values[flag as keyof typeof values] as string);
  const criterion = values.criterion;
  assertCriterion(criterion);
  const sparsity = parseSparsity(values.pattern);
  const reps = int("reps");
  const only = values.only.split(",").map((s) => s.trim());
  const progress = (what: string) => (r: number) => {
    if (Deno.stderr.isTerminal()) console.error(`${what}: repetition ${r} of ${reps}`);
  };
  const engine = await Engine.create();
  const rows: string[][] = [];
  const result: Record<string, unknown> = { pattern: values.pattern, criterion, reps };
  try {
    if (only.includes("lm")) {
      const dim = int("dim");
      const config: LlamaConfig = {
        vocab: 512,
        dim,
        hidden: int("hidden"),
        layers: int("layers"),
        heads: dim / 64,
        kvHeads: dim / 64,
        maxLen: int("prompt") + int("decode") + 1,
        normEps: 1e-5,
        ropeTheta: 10000,
        tied: false,
      };
      const model = new Llama(engine, config, 1);
      const prompt = Int32Array.from({ length: int("prompt") }, (_, i) => (i * 37) % 512);
      const prune: ActivationPruningConfig = {
        sparsity,
        criterion,
        mitigation: "none",
        layers: ["q", "k", "v", "o", "gate", "up", "down"],
      };
      const prefill = await denseAgainstSparse(
        model,
        prune,
        reps,
        prefillRate(model, prompt),
        progress("prefill"),
      );
      const decode = await denseAgainstSparse(
        model,
        prune,
        reps,
        decodeRate(model, prompt, int("decode")),
        progress("decode"),
      );
      model.dispose();
      rows.push(row(`LM d=${dim} prefill ${prompt.length}`, "tokens/s", prefill));
      rows.push(row(`LM d=${dim} decode, batch 1`, "tokens/s", decode));
      result.lm = {
        config,
        promptTokens: prompt.length,
        decodeTokens: int("decode"),
        prefill,
        decode,
      };
    }
    if (only.includes("sasrec")) {
      const config: SasRecConfig = {
        items: int("items"),
        maxLen: 50,
        dim: int("sasrec-dim"),
        blocks: 2,
        heads: 2,
        dropout: 0,
        seed: 1,
      };
      const model = new SasRec(engine, config);
      const prune: ActivationPruningConfig = {
        sparsity,
        criterion,
        mitigation: "none",
        layers: ["q", "k", "v", "o", "fc1", "fc2"],
      };
      const ranking = await denseAgainstSparse(
        model,
        prune,
        reps,
        rankingRate(model, int("users"), 7),
        progress("ranking"),
      );
      model.dispose();
      rows.push(row(`SASRec d=${config.dim}, ${config.items} items`, "users/s", ranking));
      result.sasrec = { config, users: int("users"), ranking };
    }
    const path = await writeResult("prune", engine.gpu.adapterName, result);
    if (values.json) console.log(JSON.stringify(result));
    else {
      console.log(
        `${values.pattern} activation pruning (${criterion}), ${engine.gpu.adapterName}, ` +
          `medians of ${reps} alternated repetitions:`,
      );
      console.log(formatTable(["model", "unit", "dense", "sparse", "sparse/dense"], rows));
      console.log(`wrote ${path}`);
    }
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
